"""The image-captioning task: its loss, predictions and evaluator, and how its model and loaders are built
from a config or restored from a checkpoint (one class implementing ``tasks.base.Task``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from vision2seq.config import CaptioningConfig, GenerationConfig
from vision2seq.data.tokenizer import detokenize
from vision2seq.data.vocab import Vocabulary, VocabularyError
from vision2seq.engine.distributed import SINGLE, DistContext
from vision2seq.engine.loop import seed_everything
from vision2seq.errors import UserError
from vision2seq.evaluation.caption_metrics import CaptionEvaluator
from vision2seq.models.caption_model import CaptionModel, attention_regularization, build_decoder
from vision2seq.models.encoder import ImageEncoder
from vision2seq.models.normalization import FeatureNorm
from vision2seq.tasks.base import (
    Built,
    Restored,
    apply_overrides,
    build_encoder,
    parameter_groups,
    start_encoder,
)
from vision2seq.tasks.base import fit_normalization as shared_fit
from vision2seq.tasks.scst import CiderDReward, SelfCritical, SelfCriticalLoss


@dataclass
class Captions:
    """A batch's generated captions, in batch order, and with ``return_attention`` each caption's
    attention: ``(tokens, grid_h, grid_w)`` maps over an image's grid, ``(tokens, T)`` over a clip's
    frames (row ``i``: the weights used to predict token ``i``)."""

    captions: list[str]
    attention: list[torch.Tensor] | None = None

    def items(self) -> list[tuple[str, torch.Tensor | None]]:
        """One ``(caption, attention or None)`` per item."""
        attention = self.attention or [None] * len(self.captions)
        return list(zip(self.captions, attention, strict=True))


class BatchCaptionEvaluator:
    """Feeds generated captions and the batch's references to a ``CaptionEvaluator``."""

    def __init__(self) -> None:
        self.scorer = CaptionEvaluator()

    def update(self, predictions: Captions, batch: Mapping[str, Any]) -> None:
        keys = batch["keys"]
        self.scorer.update(
            dict(zip(keys, predictions.captions, strict=True)),
            dict(zip(keys, batch["references"], strict=True)),
        )

    def compute(self) -> dict[str, float]:
        return self.scorer.compute()


class CaptioningTask:
    """Cross-entropy with teacher forcing (+ doubly stochastic attention loss), or SCST with a CIDEr-D
    reward (``train.objective``); judged by generating.

    Args:
        config: The experiment.
        vocab: Token ids <-> words.
        train_references: SCST only: the raw references of every training image, by key (the reward's
            document frequencies come from them).
    """

    name = "captioning"
    command = "vision2seq caption"
    extras = "vocab"
    schema: type = CaptioningConfig
    inputs = ("images", "features")
    monitor = "bleu_4"

    def __init__(
        self,
        config: CaptioningConfig,
        vocab: Vocabulary,
        train_references: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.config, self.vocab = config, vocab
        self.scst: SelfCritical | None = None
        if config.train.objective == "scst" and train_references is not None:
            t = config.train
            reward = CiderDReward(
                train_references, vocab.words, vocab.eos_id, special_ids=(vocab.bos_id, vocab.pad_id)
            )
            self.scst = SelfCritical(
                reward, samples=t.scst_samples, baseline=t.scst_baseline, max_len=config.generation.max_len
            )

    def training_module(self, model: CaptionModel) -> torch.nn.Module:
        """What the loop trains (and wraps in DistributedDataParallel): the model itself for cross-entropy;
        under SCST the model and its loss in one module, so that the whole step runs inside ``forward``."""
        if self.config.train.objective != "scst":
            return model
        if self.scst is None:
            raise UserError("train.objective=scst: the task was built without the training references")
        return SelfCriticalLoss(model, self.scst)

    def training_step(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The loss dict of a batch; ``model`` is ``training_module``'s (or its DDP wrapper)."""
        if self.config.train.objective == "scst":
            return model(batch)  # SelfCriticalLoss: one item per image, with its key
        captions = batch["captions"]  # (B, L) <bos> ... <eos> <pad>...
        out = model(batch)
        targets = captions[:, 1:]  # (B, L-1)
        loss = F.cross_entropy(
            out.logits.reshape(-1, out.logits.shape[-1]), targets.reshape(-1), ignore_index=self.vocab.pad_id
        )
        losses = {"loss": loss}
        if out.alphas is not None and self.config.model.decoder.alpha_c > 0:
            reg = attention_regularization(out.alphas, targets != self.vocab.pad_id)
            losses["loss"] = loss + self.config.model.decoder.alpha_c * reg
            losses["attention_reg"] = reg.detach()
        return losses

    def predict_step(
        self,
        model: CaptionModel,
        batch: Mapping[str, Any],
        settings: GenerationConfig | None = None,
        return_attention: bool = False,
    ) -> Captions:
        """Generate (``settings``: the config's ``generation`` unless given) and detokenize: the one place
        evaluation, ``caption`` and the Python entry points turn a batch into captions."""
        result = model.generate(model.features(batch), settings or self.config.generation, return_attention)
        captions = [detokenize(self.vocab.decode(tokens)) for tokens in result.tokens]
        if not return_attention or result.attention is None:
            return Captions(captions)
        return Captions(captions, [self.attention_map(model, a) for a in result.attention])

    @staticmethod
    def attention_map(model: CaptionModel, attention: torch.Tensor) -> torch.Tensor:
        """One caption's ``(tokens, positions)`` attention as ``(tokens, grid_h, grid_w)`` maps, on the CPU
        (a pooled encoder's single position stays as it is)."""
        h, w = model.encoder.grid_size
        if attention.shape[-1] == h * w:
            return attention.reshape(attention.shape[0], h, w).cpu()
        return attention.cpu()

    def make_evaluator(self) -> BatchCaptionEvaluator:
        return BatchCaptionEvaluator()

    def parameter_groups(self, model: torch.nn.Module) -> list[dict[str, Any]]:
        return parameter_groups(self.config, model)

    def checkpoint_extras(self) -> dict[str, Any]:
        return {self.extras: self.vocab.to_list()}

    @staticmethod
    def check_extras(vocab: Any) -> str | None:
        """What is wrong with a checkpoint's vocabulary, or None."""
        try:
            Vocabulary(vocab)
        except VocabularyError as exc:
            return f"malformed vocabulary in the checkpoint: {exc}"
        return None

    @classmethod
    def build(
        cls,
        config: CaptioningConfig,
        device: torch.device,
        dist: DistContext = SINGLE,
        init: Mapping[str, Any] | None = None,
    ) -> Built:
        """The task, model and loaders of a training run (the vocabulary comes from the training captions)."""
        from vision2seq.data.caption_datasets import build_caption_data

        # ``init``: the encoder weights of train.init_from, loaded before the cache and statistics are made.
        encoder = start_encoder(build_encoder(config, load_weights=not init), init)
        data = build_caption_data(config, encoder, device, dist=dist)
        # Building the feature cache may draw from the RNG; re-seed so the decoder's initial weights depend
        # only on the seed, whether or not the cache already existed.
        seed_everything(config.seed + 1)
        model = build_model(config, data.vocab, encoder=encoder)
        fit_normalization(model, data.train.dataset, config.seed, config.train.batch_size, device)
        return Built(
            cls(config, data.vocab, scst_references(config, data.train)), model, data.train, data.val
        )

    @classmethod
    def eval_loader(cls, config: CaptioningConfig, model: CaptionModel, split: str, device: torch.device):
        """One item per image of ``split``, with its references (features from the cache when frozen)."""
        from vision2seq.data.caption_datasets import build_eval_loader

        return build_eval_loader(config, model.encoder, device, split)

    @classmethod
    def restore(
        cls, checkpoint: dict[str, Any], source: str, overrides: Sequence[str] = (), device: str = "auto"
    ) -> Restored:
        """Task and model of a loaded checkpoint, its config changed by ``overrides`` before anything is
        built (after ``legacy_overrides``)."""
        config = apply_overrides(checkpoint, source, [*cls.legacy_overrides(checkpoint), *overrides])
        vocab = Vocabulary(checkpoint["extras"][cls.extras])
        return Restored.build(
            cls(config, vocab),
            lambda: cls.model(config, vocab, load_weights=False),
            checkpoint,
            source,
            device,
        )

    @staticmethod
    def model(config: Any, vocab: Vocabulary, load_weights: bool = True) -> torch.nn.Module:
        """Its model, as configured (``build_model``)."""
        return build_model(config, vocab, load_weights=load_weights)

    @staticmethod
    def legacy_overrides(checkpoint: dict[str, Any]) -> list[str]:
        """The settings of decoder keys a checkpoint predates, as its model was built without them."""
        decoder = checkpoint["config"].get("model", {}).get("decoder", {})
        if not isinstance(decoder, dict):
            return []
        # Written before conditioning was configurable: its Show-and-Tell decoder is the paper's pre-inject.
        missing = [] if "conditioning" in decoder else ["model.decoder.conditioning=pre"]
        # Written before grid positions existed: its attention decoder reads the grid without them.
        return missing + ([] if "positions" in decoder else ["model.decoder.positions=false"])


def scst_references(config: Any, train: Any) -> dict[str, Sequence[str]] | None:
    """Under SCST, the raw references of every training item by key (the reward's document frequencies
    come from them); None for cross-entropy."""
    if config.train.objective != "scst":
        return None
    return {r.key: r.captions for r in train.dataset.records}


def build_model(
    config: CaptioningConfig,
    vocab: Vocabulary,
    encoder: ImageEncoder | None = None,
    load_weights: bool = True,
) -> CaptionModel:
    """Encoder (built unless given) plus the configured decoder."""
    dec = config.model.decoder
    encoder = encoder or build_encoder(config, load_weights)
    kwargs: dict[str, Any] = dict(
        embed_dim=dec.embed_dim, hidden_dim=dec.hidden_dim, num_layers=dec.num_layers, dropout=dec.dropout
    )
    if dec.kind == "attention":
        kwargs.update(attention_dim=dec.attention_dim, positions=dec.positions)
    else:
        kwargs["conditioning"] = config.model.conditioning()
    decoder = build_decoder(dec.kind, encoder.feature_dim, len(vocab), **kwargs)
    norm = FeatureNorm(encoder.feature_dim, enabled=config.model.feature_norm == "dataset")
    return CaptionModel(encoder, decoder, vocab.bos_id, vocab.eos_id, norm)


def fit_normalization(
    model: CaptionModel, dataset: Any, seed: int, batch_size: int, device: torch.device
) -> None:
    """Set the model's feature statistics from the training images, each once however many captions it
    has (``tasks.base.fit_normalization``)."""
    from vision2seq.data.caption_datasets import ImageItems, collate_captions

    items = ImageItems(dataset.source)
    shared_fit(model, items, collate_captions, CaptionModel.raw_features, seed, batch_size, device)
