"""The video-classification task: its loss, predictions and evaluator, and how its model and loaders are
built from a config or restored from a checkpoint (one class implementing ``tasks.base.Task``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from vision2seq.config import VideoConfig
from vision2seq.engine.distributed import SINGLE, DistContext
from vision2seq.engine.loop import seed_everything
from vision2seq.evaluation.accuracy import ClassificationEvaluator
from vision2seq.models.clip_classifier import ClipClassifier, VideoModel
from vision2seq.models.encoder import ImageEncoder
from vision2seq.models.normalization import DEFAULT_MAX_ITEMS, FeatureNorm
from vision2seq.tasks.base import (
    Built,
    Restored,
    apply_overrides,
    build_encoder,
    parameter_groups,
    start_encoder,
)
from vision2seq.tasks.base import fit_normalization as shared_fit


def build_model(
    config: VideoConfig, num_classes: int, encoder: ImageEncoder | None = None, load_weights: bool = True
) -> VideoModel:
    """Encoder (built unless given) plus the configured clip classifier."""
    t = config.model.temporal
    encoder = encoder or build_encoder(config, load_weights, pooled=True)
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
    norm = FeatureNorm(encoder.feature_dim, enabled=config.model.feature_norm == "dataset")
    return VideoModel(encoder, classifier, norm)


DECODED_CLIPS_FOR_STATISTICS = 128
"""Clips decoded to estimate the feature statistics when the encoder is not cached (each costs
``num_frames`` encoder passes); cached clips are cheap and read up to ``normalization.DEFAULT_MAX_ITEMS``."""


def fit_normalization(
    model: VideoModel, dataset: Any, seed: int, batch_size: int, device: torch.device
) -> None:
    """Set the model's feature statistics from training clips: their cached per-frame features, or a
    bounded pass of the encoder over decoded clips (``tasks.base.fit_normalization``)."""
    from vision2seq.data.video.loaders import CachedClips, collate_clips

    limit = DEFAULT_MAX_ITEMS if isinstance(dataset, CachedClips) else DECODED_CLIPS_FOR_STATISTICS
    shared_fit(model, dataset, collate_clips, VideoModel.raw_clip_features, seed, batch_size, device, limit)


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
    command = "vision2seq classify"
    extras = "labels"
    schema: type = VideoConfig
    inputs = ("frames", "features")
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

    def parameter_groups(self, model: torch.nn.Module) -> list[dict[str, Any]]:
        return parameter_groups(self.config, model)

    def checkpoint_extras(self) -> dict[str, Any]:
        return {self.extras: list(self.class_names)}

    @staticmethod
    def check_extras(labels: Any) -> str | None:
        """What is wrong with a checkpoint's class names, or None."""
        if not (labels and all(isinstance(x, str) and x for x in labels)):
            return "malformed class labels in the checkpoint (not a list of names)"
        if len(set(labels)) != len(labels):
            return "malformed class labels in the checkpoint (a name listed twice)"
        return None

    @classmethod
    def build(
        cls,
        config: VideoConfig,
        device: torch.device,
        dist: DistContext = SINGLE,
        init: Mapping[str, Any] | None = None,
    ) -> Built:
        """The task, model and loaders of a training run (class names from the dataset's layout)."""
        from vision2seq.data.video.loaders import build_video_data

        # ``init``: the encoder weights of train.init_from, loaded before the cache and statistics are made.
        encoder = start_encoder(build_encoder(config, load_weights=not init, pooled=True), init)
        data = build_video_data(config, encoder, device, dist)
        seed_everything(config.seed + 1)  # classifier init independent of whether the cache existed
        model = build_model(config, len(data.class_names), encoder=encoder)
        fit_normalization(model, data.train.dataset, config.seed, config.train.batch_size, device)
        return Built(cls(config, data.class_names), model, data.train, data.val)

    @classmethod
    def eval_loader(cls, config: VideoConfig, model: VideoModel, split: str, device: torch.device):
        """Every video of ``split`` with its label (features from the training run's cache when frozen)."""
        from vision2seq.data.video.loaders import clip_datasets, load_video_list, make_loader

        videos = load_video_list(config, split)
        [dataset] = clip_datasets(config, model.encoder, [(videos, False)], device)
        return make_loader(dataset, config, False, device)

    @classmethod
    def restore(
        cls, checkpoint: dict[str, Any], source: str, overrides: Sequence[str] = (), device: str = "auto"
    ) -> Restored:
        """Task and model of a loaded checkpoint, its config changed by ``overrides`` before anything is
        built."""
        config = apply_overrides(checkpoint, source, overrides)
        names = list(checkpoint["extras"][cls.extras])
        return Restored.build(
            cls(config, names),
            lambda: build_model(config, len(names), load_weights=False),
            checkpoint,
            source,
            device,
        )
