"""The video-captioning task: its loss, predictions and evaluator, and how its model and loaders are built
from a config or restored from a checkpoint (one class implementing ``tasks.base.Task``).

The loss, predictions and metrics are image captioning's (teacher-forced cross-entropy, captions judged by
generating, COCO caption metrics with the same keys); what differs is the model (an order-aware encoder
over the frames before the attention decoder) and the data (clips through the video frame pipeline).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from vision2seq.config import VideoCaptioningConfig
from vision2seq.data.vocab import Vocabulary
from vision2seq.engine.distributed import SINGLE, DistContext
from vision2seq.engine.loop import seed_everything
from vision2seq.models.caption_model import AttentionDecoder
from vision2seq.models.encoder import ImageEncoder
from vision2seq.models.video_caption_model import TemporalEncoder, VideoCaptionModel
from vision2seq.tasks.base import Built, build_encoder, start_encoder
from vision2seq.tasks.captioning import CaptioningTask, scst_references


class VideoCaptioningTask(CaptioningTask):
    """Image captioning's objectives (cross-entropy + attention penalty over frames, or SCST) and
    evaluation, for clips; the temporal encoder trains with the decoder. Best checkpoint by CIDEr-D.
    Its checkpoints hold the same ``vocab`` entry, checked the same way (``check_extras`` inherited)."""

    name = "video_captioning"
    schema: type = VideoCaptioningConfig
    inputs = ("frames", "features")
    monitor = "cider"

    @staticmethod
    def attention_map(model: torch.nn.Module, attention: torch.Tensor) -> torch.Tensor:
        """One caption's attention over the clip's frames, ``(tokens, T)``, on the CPU."""
        return attention.cpu()

    @classmethod
    def build(
        cls,
        config: VideoCaptioningConfig,
        device: torch.device,
        dist: DistContext = SINGLE,
        init: Mapping[str, Any] | None = None,
    ) -> Built:
        """The task, model and loaders of a training run (the vocabulary comes from the training captions)."""
        from vision2seq.data.video.caption_loaders import build_video_caption_data

        # ``init``: the encoder weights of train.init_from, loaded before the cache is made.
        encoder = start_encoder(build_encoder(config, load_weights=not init, pooled=True), init)
        data = build_video_caption_data(config, encoder, device, dist)
        seed_everything(config.seed + 1)  # model init independent of whether the cache already existed
        model = build_model(config, data.vocab, encoder=encoder)
        return Built(
            cls(config, data.vocab, scst_references(config, data.train)), model, data.train, data.val
        )

    @classmethod
    def eval_loader(
        cls, config: VideoCaptioningConfig, model: VideoCaptionModel, split: str, device: torch.device
    ):
        """One item per clip of ``split``, with its references (features from the cache when frozen)."""
        from vision2seq.data.video.caption_loaders import build_eval_loader

        return build_eval_loader(config, model.encoder, device, split)

    @staticmethod
    def model(config: Any, vocab: Vocabulary, load_weights: bool = True) -> torch.nn.Module:
        """Its model, as configured (``build_model``)."""
        return build_model(config, vocab, load_weights=load_weights)

    @staticmethod
    def legacy_overrides(checkpoint: dict[str, Any]) -> list[str]:
        return []  # every video-captioning checkpoint has today's keys


def build_model(
    config: VideoCaptioningConfig,
    vocab: Vocabulary,
    encoder: ImageEncoder | None = None,
    load_weights: bool = True,
) -> VideoCaptionModel:
    """Encoder (built unless given), temporal encoder and attention decoder, as configured."""
    t, dec = config.model.temporal, config.model.decoder
    encoder = encoder or build_encoder(config, load_weights, pooled=True)
    temporal = TemporalEncoder(
        encoder.feature_dim,
        kind=t.kind,
        hidden_dim=t.hidden_dim,
        num_layers=t.num_layers,
        bidirectional=t.bidirectional,
        dropout=t.dropout,
    )
    decoder = AttentionDecoder(
        temporal.output_dim,
        len(vocab),
        embed_dim=dec.embed_dim,
        hidden_dim=dec.hidden_dim,
        attention_dim=dec.attention_dim,
        num_layers=dec.num_layers,
        dropout=dec.dropout,
        pad_id=vocab.pad_id,
    )
    return VideoCaptionModel(encoder, temporal, decoder, vocab.bos_id, vocab.eos_id)
