"""The video-classification task: model (frame encoder + clip classifier), loss, predictions, evaluator,
and the data set-up for the shared training loop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vision2seq.config import VideoConfig
from vision2seq.distributed import SINGLE, DistContext
from vision2seq.engine import seed_everything
from vision2seq.evaluation.accuracy import ClassificationEvaluator
from vision2seq.models.clip_classifier import ClipClassifier
from vision2seq.models.encoder import ImageEncoder


class VideoModel(nn.Module):
    """A per-frame image encoder and an LSTM (or mean-pool) clip classifier."""

    def __init__(self, encoder: ImageEncoder, classifier: ClipClassifier) -> None:
        super().__init__()
        self.encoder, self.classifier = encoder, classifier

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``(..., T, 3, H, W)`` frames -> ``(..., T, D)`` features (the encoder sees them as one batch)."""
        lead = frames.shape[:-3]
        features = self.encoder(frames.flatten(0, -4))  # (N*T, D)
        return features.reshape(*lead, features.shape[-1])

    def clip_features(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Cached features when the batch carries them, else the encoder over its frames."""
        if "features" in batch:
            return batch["features"]
        return self.encode_frames(batch["frames"])

    def forward(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """A batch of clips (cached ``features`` or raw ``frames``) -> logits (see ``logits``)."""
        return self.logits(self.clip_features(batch))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, C)`` logits, or ``(B, N, T, D)`` (N clips per video) -> ``(B, N, C)``."""
        if features.dim() == 4:
            b, n = features.shape[:2]
            return self.classifier(features.flatten(0, 1)).reshape(b, n, -1)
        return self.classifier(features)


def build_video_encoder(config: VideoConfig, load_weights: bool = True) -> ImageEncoder:
    enc = config.model.encoder
    # A clip classifier consumes one vector per frame, so the encoder output is always pooled.
    return ImageEncoder(
        enc.name, enc.weights, "pooled", enc.trainable_from, enc.image_size, load_weights, enc.resize
    )


def build_video_model(
    config: VideoConfig, num_classes: int, encoder: ImageEncoder | None = None, load_weights: bool = True
) -> VideoModel:
    t = config.model.temporal
    encoder = encoder or build_video_encoder(config, load_weights)
    classifier = ClipClassifier(
        encoder.feature_dim,
        num_classes,
        kind=t.kind,
        hidden_dim=t.hidden_dim,
        num_layers=t.num_layers,
        bidirectional=t.bidirectional,
        dropout=t.dropout,
        pooling=t.pooling,
    )
    return VideoModel(encoder, classifier)


class VideoEvaluator:
    """Clip-level and video-level (clip scores averaged) accuracy from the task's predictions."""

    def __init__(self, class_names: list[str]) -> None:
        n = len(class_names)
        self.video = ClassificationEvaluator(n, class_names)
        self.clip = ClassificationEvaluator(n, class_names)

    def update(self, predictions: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> None:
        labels = batch["label"]
        clip_probs = predictions["clip_probs"]  # (B, N, C)
        self.video.update(predictions["video_probs"], labels)
        self.clip.update(clip_probs.flatten(0, 1), labels.repeat_interleave(clip_probs.shape[1]))

    def compute(self) -> dict[str, Any]:
        video = self.video.compute()
        clip = self.clip.compute()
        metrics = dict(video)
        metrics.update({f"clip_{k}": v for k, v in clip.items() if isinstance(v, float)})
        return metrics


class VideoClassificationTask:
    """Cross-entropy on clip logits; predictions are softmax scores averaged over a video's clips."""

    name = "video_classification"
    monitor = "top1"

    def __init__(self, config: VideoConfig, class_names: list[str]) -> None:
        self.config, self.class_names = config, class_names

    def training_step(self, model: VideoModel, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        logits = model(batch)  # (B, C)
        return {"loss": F.cross_entropy(logits, batch["label"])}

    def predict_step(self, model: VideoModel, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        logits = model(batch)
        if logits.dim() == 2:
            logits = logits.unsqueeze(1)  # a single clip per video: (B, 1, C)
        clip_probs = logits.float().softmax(dim=-1)  # (B, N, C)
        return {"clip_probs": clip_probs, "video_probs": clip_probs.mean(dim=1)}

    def make_evaluator(self) -> VideoEvaluator:
        return VideoEvaluator(self.class_names)

    def parameter_groups(self, model: VideoModel) -> list[dict[str, Any]]:
        return [
            {"params": list(model.classifier.parameters()), "lr": self.config.train.lr},
            {"params": list(model.encoder.parameters()), "lr": self.config.model.encoder.lr},
        ]

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"labels": list(self.class_names)}


def setup_video(config: VideoConfig, device: torch.device, dist: DistContext = SINGLE):
    """The task, model and loaders of a video experiment (used by ``vision2seq.train``)."""
    from vision2seq.data.video_loaders import build_video_data

    encoder = build_video_encoder(config)
    data = build_video_data(config, encoder, device, dist)
    seed_everything(config.seed + 1)  # classifier init independent of whether the cache existed
    model = build_video_model(config, len(data.class_names), encoder=encoder)
    return VideoClassificationTask(config, data.class_names), model, data
