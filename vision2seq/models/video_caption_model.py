"""Video captioning: per-frame CNN features -> an order-aware temporal encoder -> the attention decoder.

The frames of a clip go through the shared image encoder one by one (pooled, ``(B, T, D)``); a
(bidirectional) LSTM runs over them in order, as S2VT and the temporal-attention captioners do, and the
Show-Attend-and-Tell decoder of image captioning attends over its ``T`` outputs instead of an image's
grid positions: soft attention over time. Because the LSTM reads the frames in order, clips holding the
same frames in another order (a square moving left vs right) get different memories and can get
different captions; ``kind="mean"`` is the order-blind baseline (the mean frame is the only memory).

Decoding (greedy, beam search, sampling) goes through the one dispatcher of ``models.generation``;
the attention returned on request is over frames, ``(tokens, T)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from vision2seq.models.caption_model import AttentionDecoder, DecoderOutput
from vision2seq.models.generation import Generation, generate

if TYPE_CHECKING:
    from vision2seq.config import GenerationConfig
    from vision2seq.models.encoder import ImageEncoder

TEMPORAL_KINDS = ("lstm", "mean")


class TemporalEncoder(nn.Module):
    """Frame features ``(B, T, D)`` -> the memory the decoder attends over, ``(B, T, H')``.

    Each feature dimension is first standardised (batch normalisation over clips and frames), then an
    LSTM reads the frames in order.

    Args:
        feature_dim: Size ``D`` of a frame's feature.
        kind: ``lstm`` (order-aware) or ``mean`` (the order-blind baseline: memory ``(B, 1, D)``).
        hidden_dim: LSTM hidden size per direction.
        num_layers: Stacked LSTM layers.
        bidirectional: Also run the frames backwards (then ``H' = 2 * hidden_dim``).
        dropout: On the frame features, and between LSTM layers.
    """

    def __init__(
        self,
        feature_dim: int,
        kind: str = "lstm",
        hidden_dim: int = 512,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if kind not in TEMPORAL_KINDS:
            raise ValueError(f"kind must be one of {TEMPORAL_KINDS}, got {kind!r}")
        self.kind = kind
        # A frozen CNN's features share large per-dimension offsets across clips, and what tells clips
        # apart is a few percent of them: without standardising each dimension the decoder learns the
        # captions' language and ignores the clip (measured on the generated clips of the learning test).
        self.norm = nn.BatchNorm1d(feature_dim)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = feature_dim
        if kind == "lstm":
            self.lstm = nn.LSTM(
                feature_dim,
                hidden_dim,
                num_layers,
                batch_first=True,
                bidirectional=bidirectional,
                dropout=dropout if num_layers > 1 else 0.0,
            )
            self.output_dim = hidden_dim * (2 if bidirectional else 1)

    def forward(self, features: Tensor) -> Tensor:
        if features.dim() != 3:
            raise ValueError(f"frame features must be (B, T, D), got shape {tuple(features.shape)}")
        x = self.norm(features.transpose(1, 2)).transpose(1, 2)  # each dimension standardised
        x = self.dropout(x)  # (B, T, D)
        if self.kind == "mean":
            return x.mean(dim=1, keepdim=True)  # (B, 1, D): every frame order gives the same memory
        out, _ = self.lstm(x)  # (B, T, H')
        return out


class VideoCaptionModel(nn.Module):
    """Per-frame encoder, temporal encoder and attention decoder: ``forward`` trains (teacher forcing),
    ``generate`` decodes. The same interface as ``CaptionModel``: ``features(batch)`` then
    ``generate(features, settings)``.

    Args:
        encoder: The CNN run on every frame (pooled output).
        temporal: The ``TemporalEncoder`` over the frame features.
        decoder: An ``AttentionDecoder`` whose ``feature_dim`` is ``temporal.output_dim``.
        bos_id: Token id that starts every caption (``<bos>``).
        eos_id: Token id that ends one (``<eos>``).
    """

    def __init__(
        self,
        encoder: ImageEncoder,
        temporal: TemporalEncoder,
        decoder: AttentionDecoder,
        bos_id: int,
        eos_id: int,
    ) -> None:
        super().__init__()
        self.encoder, self.temporal, self.decoder = encoder, temporal, decoder
        self.bos_id, self.eos_id = bos_id, eos_id

    def encode_frames(self, frames: Tensor) -> Tensor:
        """``(B, T, 3, H, W)`` frames -> ``(B, T, D)`` features (the encoder sees them as one batch)."""
        features = self.encoder(frames.flatten(0, 1))  # (B*T, D)
        return features.reshape(*frames.shape[:2], features.shape[-1])

    def features(self, batch: Mapping[str, Any]) -> Tensor:
        """Per-frame features ``(B, T, D)``: the batch's cached ``features``, else the encoder over its
        ``frames``."""
        if "features" in batch:
            return batch["features"]
        return self.encode_frames(batch["frames"])

    def memory(self, features: Tensor) -> Tensor:
        """What the decoder attends over: the temporal encoder's outputs ``(B, T, H')``."""
        return self.temporal(features)

    def forward(self, batch: Mapping[str, Any]) -> DecoderOutput:
        """Teacher forcing on the batch's ``captions`` ``(B, L)``; attention weights are ``(B, L-1, T)``."""
        return self.decoder(self.memory(self.features(batch)), batch["captions"])

    @torch.no_grad()
    def generate(
        self, features: Tensor, settings: GenerationConfig, return_attention: bool = False
    ) -> Generation:
        """Captions of frame ``features`` (from ``features()``), decoded as ``settings`` says; the
        attention, when asked for, is over frames."""
        training = self.temporal.training
        self.temporal.eval()  # dropout off, as generation does for the decoder
        try:
            memory = self.memory(features)
        finally:
            self.temporal.train(training)
        return generate(self.decoder, memory, self.bos_id, self.eos_id, settings, return_attention)
