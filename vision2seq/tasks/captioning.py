"""The captioning task: the model (encoder + LSTM decoder), its loss, its predictions, its evaluator."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vision2seq.config import CaptioningConfig, GenerationConfig
from vision2seq.data.tokenizer import detokenize
from vision2seq.data.vocab import Vocabulary
from vision2seq.evaluation.captions import CaptionEvaluator
from vision2seq.models.captioner import DecoderOutput, attention_regularization, build_decoder
from vision2seq.models.encoder import ImageEncoder
from vision2seq.models.generation import Generation, beam_search, greedy, sample


class CaptionModel(nn.Module):
    """An image encoder and a caption decoder; ``forward`` is teacher forcing."""

    def __init__(self, encoder: ImageEncoder, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def features(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Cached features when the batch carries them, else the encoder run on its images."""
        if "features" in batch:
            return batch["features"]  # (B, D) or (B, N, D)
        return self.encoder(batch["images"])

    def forward(self, batch: Mapping[str, Any]) -> DecoderOutput:
        """Teacher forcing on the batch's ``captions`` ``(B, L)`` (the whole batch goes through forward so
        DistributedDataParallel sees every trained parameter, the encoder's included)."""
        return self.decoder(self.features(batch), batch["captions"])


def build_encoder(config: CaptioningConfig, load_weights: bool = True) -> ImageEncoder:
    """The configured encoder; ``load_weights=False`` when its weights will come from a checkpoint."""
    enc = config.model.encoder
    return ImageEncoder(
        enc.name, enc.weights, enc.output, enc.trainable_from, enc.image_size, load_weights, enc.resize
    )


def build_caption_model(
    config: CaptioningConfig, vocab_size: int, encoder: ImageEncoder | None = None, load_weights: bool = True
) -> CaptionModel:
    """Encoder (built unless given) plus the configured decoder."""
    dec = config.model.decoder
    encoder = encoder or build_encoder(config, load_weights)
    kwargs: dict[str, Any] = dict(
        embed_dim=dec.embed_dim, hidden_dim=dec.hidden_dim, num_layers=dec.num_layers, dropout=dec.dropout
    )
    if dec.kind == "attention":
        kwargs["attention_dim"] = dec.attention_dim
    decoder = build_decoder(dec.kind, encoder.feature_dim, vocab_size, **kwargs)
    return CaptionModel(encoder, decoder)


def generate_captions(
    model: CaptionModel,
    features: torch.Tensor,
    vocab: Vocabulary,
    settings: GenerationConfig,
    return_attention: bool = False,
) -> Generation:
    """Decode ``features`` with the configured strategy: greedy, batched beam search, or sampling."""
    common = dict(max_len=settings.max_len, return_attention=return_attention)
    if settings.strategy == "sample":
        return sample(
            model.decoder,
            features,
            vocab.bos_id,
            vocab.eos_id,
            temperature=settings.temperature,
            top_k=settings.top_k,
            **common,
        )
    if settings.strategy == "greedy" or settings.beam_size <= 1:
        return greedy(model.decoder, features, vocab.bos_id, vocab.eos_id, **common)
    return beam_search(
        model.decoder,
        features,
        vocab.bos_id,
        vocab.eos_id,
        beam_size=settings.beam_size,
        length_penalty=settings.length_penalty,
        **common,
    )


def generation_settings(
    base: GenerationConfig,
    beam_size: int | None = None,
    max_len: int | None = None,
    length_penalty: float | None = None,
) -> GenerationConfig:
    """``base`` with the given values replaced; a beam size picks beam search (1: greedy)."""
    settings = base
    if beam_size is not None:
        settings = dataclasses.replace(
            settings, strategy="beam" if beam_size > 1 else "greedy", beam_size=beam_size
        )
    if max_len is not None:
        settings = dataclasses.replace(settings, max_len=max_len)
    if length_penalty is not None:
        settings = dataclasses.replace(settings, length_penalty=length_penalty)
    return settings


class BatchCaptionEvaluator:
    """Feeds generated captions and the batch's references to a ``CaptionEvaluator``."""

    def __init__(self) -> None:
        self.scorer = CaptionEvaluator()

    def update(self, predictions: dict[str, str], batch: Mapping[str, Any]) -> None:
        self.scorer.update(predictions, dict(zip(batch["keys"], batch["references"], strict=True)))

    def compute(self) -> dict[str, float]:
        return self.scorer.compute()


class CaptioningTask:
    """Cross-entropy with teacher forcing (+ doubly stochastic attention loss); judged by generating."""

    name = "captioning"
    monitor = "bleu_4"

    def __init__(self, config: CaptioningConfig, vocab: Vocabulary) -> None:
        self.config, self.vocab = config, vocab

    def training_step(self, model: CaptionModel, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        captions = batch["captions"]  # (B, L) <bos> ... <eos> <pad>...
        out = model(batch)
        targets = captions[:, 1:]  # (B, L-1)
        loss = F.cross_entropy(
            out.logits.reshape(-1, out.logits.shape[-1]), targets.reshape(-1), ignore_index=self.vocab.pad_id
        )
        losses = {"loss": loss, "xent": loss.detach()}
        if out.alphas is not None and self.config.model.decoder.alpha_c > 0:
            reg = attention_regularization(out.alphas, targets != self.vocab.pad_id)
            losses["loss"] = loss + self.config.model.decoder.alpha_c * reg
            losses["attention_reg"] = reg.detach()
        return losses

    def predict_step(self, model: CaptionModel, batch: Mapping[str, Any]) -> dict[str, str]:
        result = generate_captions(model, model.features(batch), self.vocab, self.config.generation)
        return {
            key: detokenize(self.vocab.decode(tokens))
            for key, tokens in zip(batch["keys"], result.tokens, strict=True)
        }

    def make_evaluator(self) -> BatchCaptionEvaluator:
        return BatchCaptionEvaluator()

    def parameter_groups(self, model: CaptionModel) -> list[dict[str, Any]]:
        return [
            {"params": list(model.decoder.parameters()), "lr": self.config.train.lr},
            {"params": list(model.encoder.parameters()), "lr": self.config.model.encoder.lr},
        ]

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"vocab": self.vocab.to_list()}
