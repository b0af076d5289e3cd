"""Video clip classifiers over per-frame CNN features ``(B, T, D)``.

``ClipClassifier`` runs an LSTM over the frame features, pools its states over time (last state, mean,
or learned attention) and maps the result to class logits. ``kind="mean"`` is the no-LSTM baseline: the
mean of the frame features -> linear; it cannot tell clips apart whose frames differ only in order.

Streaming: ``init_stream`` / ``stream_step`` consume one frame (or a chunk) at a time, keep the LSTM
state and pooling statistics, and give logits after every frame; after the last frame they equal
``forward`` on the whole clip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from vision2seq.models.normalization import FeatureNorm

if TYPE_CHECKING:
    from vision2seq.models.encoder import ImageEncoder


@dataclass
class StreamState:
    """What a stream keeps between frames (batch dimension first where tensors are batched)."""

    frames: int = 0
    hidden: tuple[Tensor, Tensor] | None = None  # LSTM (h, c), each (layers * dirs, B, H)
    last: Tensor | None = None  # (B, H') output at the latest frame
    total: Tensor | None = None  # (B, H') running sum of outputs (mean pooling / mean baseline)
    att_max: Tensor | None = None  # (B, 1) running max of attention scores (online softmax)
    att_norm: Tensor | None = None  # (B, 1) running sum of exp(score - max)
    att_sum: Tensor | None = None  # (B, H') running sum of exp(score - max) * output
    buffer: list[Tensor] = field(default_factory=list)  # frames so far (bidirectional LSTMs only)


class ClipClassifier(nn.Module):
    """Frame features -> (LSTM) -> temporal pooling -> class logits.

    Args:
        feature_dim: size D of a frame's feature vector.
        num_classes: number of labels.
        kind: ``lstm``, or ``mean`` for the no-LSTM baseline.
        hidden_dim: LSTM hidden size (per direction).
        num_layers: stacked LSTM layers.
        bidirectional: run a second LSTM backwards in time.
        dropout: dropout between LSTM layers and before the classifier.
        pooling: ``last`` (final state), ``mean`` (over time) or ``attention`` (learned weights).
    """

    def __init__(
        self,
        feature_dim: int,
        num_classes: int,
        kind: str = "lstm",
        hidden_dim: int = 512,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.5,
        pooling: str = "last",
    ) -> None:
        super().__init__()
        if kind not in ("lstm", "mean"):
            raise ValueError(f"kind must be 'lstm' or 'mean', got {kind!r}")
        if pooling not in ("last", "mean", "attention"):
            raise ValueError(f"pooling must be 'last', 'mean' or 'attention', got {pooling!r}")
        self.kind, self.pooling, self.bidirectional = kind, pooling, bidirectional and kind == "lstm"
        self.dropout = nn.Dropout(dropout)
        out_dim = feature_dim
        if kind == "lstm":
            self.lstm = nn.LSTM(
                feature_dim,
                hidden_dim,
                num_layers=num_layers,
                batch_first=True,
                bidirectional=self.bidirectional,
                dropout=dropout if num_layers > 1 else 0.0,
            )
            out_dim = hidden_dim * (2 if self.bidirectional else 1)
            if pooling == "attention":
                self.attention = nn.Sequential(
                    nn.Linear(out_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, 1)
                )
        self.classifier = nn.Linear(out_dim, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        """``(B, T, D)`` frame features -> ``(B, C)`` logits."""
        if self.kind == "mean":
            return self.classifier(self.dropout(features.mean(dim=1)))
        outputs, _ = self.lstm(features)  # (B, T, H')
        return self.classifier(self.dropout(self._pool(outputs)))

    def _pool(self, outputs: Tensor) -> Tensor:
        if self.pooling == "mean":
            return outputs.mean(dim=1)
        if self.pooling == "attention":
            weights = torch.softmax(self.attention(outputs), dim=1)  # (B, T, 1)
            return (weights * outputs).sum(dim=1)
        if self.bidirectional:  # forward direction ends at T-1, backward direction at 0
            half = outputs.shape[-1] // 2
            return torch.cat([outputs[:, -1, :half], outputs[:, 0, half:]], dim=-1)
        return outputs[:, -1]

    def temporal_attention(self, features: Tensor) -> Tensor | None:
        """``(B, T)`` attention weights over frames (``pooling="attention"`` only), for plotting."""
        if self.kind != "lstm" or self.pooling != "attention":
            return None
        outputs, _ = self.lstm(features)
        return torch.softmax(self.attention(outputs), dim=1).squeeze(-1)

    # ----------------------------------------------------------------------------------------------
    # Streaming

    def init_stream(self) -> StreamState:
        return StreamState()

    def stream_step(self, features: Tensor, state: StreamState) -> tuple[Tensor, StreamState]:
        """Consume ``(B, t, D)`` new frame features (``t`` >= 1); return ``(B, C)`` logits so far."""
        if features.dim() == 2:
            features = features.unsqueeze(1)  # one frame: (B, D) -> (B, 1, D)
        state.frames += features.shape[1]
        if self.kind == "mean":
            state.total = _add(state.total, features.sum(dim=1))
            return self.classifier(self.dropout(state.total / state.frames)), state
        if self.bidirectional:
            # The backward direction depends on future frames: re-run over the frames so far.
            state.buffer.append(features)
            return self.forward(torch.cat(state.buffer, dim=1)), state
        outputs, state.hidden = self.lstm(features, state.hidden)  # (B, t, H)
        if self.pooling == "last":
            pooled = outputs[:, -1]
        elif self.pooling == "mean":
            state.total = _add(state.total, outputs.sum(dim=1))
            pooled = state.total / state.frames
        else:
            pooled = self._online_attention(outputs, state)
        return self.classifier(self.dropout(pooled)), state

    def _online_attention(self, outputs: Tensor, state: StreamState) -> Tensor:
        """Softmax-weighted sum over all outputs so far, updated without keeping them (online softmax)."""
        scores = self.attention(outputs)  # (B, t, 1)
        new_max = scores.max(dim=1).values  # (B, 1)
        peak = new_max if state.att_max is None else torch.maximum(state.att_max, new_max)
        weights = torch.exp(scores - peak.unsqueeze(1))  # (B, t, 1)
        if state.att_max is None:
            state.att_norm, state.att_sum = weights.sum(dim=1), (weights * outputs).sum(dim=1)
        else:
            rescale = torch.exp(state.att_max - peak)  # earlier terms relative to the new max
            state.att_norm = state.att_norm * rescale + weights.sum(dim=1)
            state.att_sum = state.att_sum * rescale + (weights * outputs).sum(dim=1)
        state.att_max = peak
        return state.att_sum / state.att_norm


def _add(total: Tensor | None, value: Tensor) -> Tensor:
    return value if total is None else total + value


class VideoModel(nn.Module):
    """A per-frame image encoder, the training set's feature normalisation, and a clip classifier.

    Every path to the classifier (cached features in training and evaluation, decoded frames in
    ``classify``, frame-by-frame streaming) goes through ``frame_features``, so all apply the same
    normalisation.

    Args:
        encoder: The CNN run on every frame.
        classifier: LSTM (or mean-pool) clip classifier.
        norm: Feature standardisation with the training set's statistics; None: features go in raw.
    """

    def __init__(
        self, encoder: ImageEncoder, classifier: ClipClassifier, norm: FeatureNorm | None = None
    ) -> None:
        super().__init__()
        self.encoder, self.classifier = encoder, classifier
        self.norm = norm if norm is not None else FeatureNorm(encoder.feature_dim, enabled=False)

    def raw_frame_features(self, frames: Tensor) -> Tensor:
        """``(..., T, 3, H, W)`` frames -> ``(..., T, D)`` encoder features (one batch for the encoder)."""
        lead = frames.shape[:-3]
        features = self.encoder(frames.flatten(0, -4))  # (N*T, D)
        return features.reshape(*lead, features.shape[-1])

    def frame_features(self, raw: Tensor) -> Tensor:
        """Raw per-frame features ``(..., D)`` (cached or just encoded) -> what the classifier reads."""
        return self.norm(raw)

    def encode_frames(self, frames: Tensor) -> Tensor:
        """``(..., T, 3, H, W)`` frames -> ``(..., T, D)`` normalised features (classify and stream)."""
        return self.frame_features(self.raw_frame_features(frames))

    def raw_clip_features(self, batch: Mapping[str, Any]) -> Tensor:
        """Cached ``features`` when the batch carries them, else the encoder over its ``frames``."""
        if "features" in batch:
            return batch["features"]
        return self.raw_frame_features(batch["frames"])

    def clip_features(self, batch: Mapping[str, Any]) -> Tensor:
        """The batch's normalised per-frame features ``(B, [N,] T, D)``."""
        return self.frame_features(self.raw_clip_features(batch))

    def forward(self, batch: Mapping[str, Any]) -> Tensor:
        """A batch of clips (cached ``features`` or raw ``frames``) -> logits (see ``logits``)."""
        return self.logits(self.clip_features(batch))

    def logits(self, features: Tensor) -> Tensor:
        """``(B, T, D)`` -> ``(B, C)`` logits, or ``(B, N, T, D)`` (N clips per video) -> ``(B, N, C)``."""
        if features.dim() == 4:
            b, n = features.shape[:2]
            return self.classifier(features.flatten(0, 1)).reshape(b, n, -1)
        return self.classifier(features)
