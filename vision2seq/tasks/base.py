"""The task Protocol every task class implements, what it returns to the loop and the inference
classes (``Built``, ``Restored``), and the helpers the tasks share."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from vision2seq.config import ExperimentConfig, config_from_dict, with_overrides
from vision2seq.engine.checkpoint import restore_model
from vision2seq.engine.distributed import SINGLE, DistContext, resolve_device
from vision2seq.engine.loop import Evaluator
from vision2seq.models.encoder import ImageEncoder
from vision2seq.models.normalization import DEFAULT_MAX_ITEMS, fit_feature_norm


class Task(Protocol):
    """One task: a class whose class attributes and class methods say how its runs and checkpoints are
    built, and whose instances (holding the config and the vocabulary or class names) give the loop
    and the predictor their steps. ``engine.Task`` is the part the loop reads."""

    name: ClassVar[str]
    """The config's ``task`` key and the checkpoint's ``task`` entry."""
    command: ClassVar[str]
    """The command that uses this task's checkpoints (named in errors about the wrong kind of checkpoint)."""
    extras: ClassVar[str]
    """The entry of a checkpoint's ``extras`` this task needs (a list: the vocabulary, the class names)."""
    schema: ClassVar[type]
    """Its config class (``config.SCHEMAS[name]``)."""
    inputs: ClassVar[tuple[str, ...]]
    """Batch entries only the model reads (images, frames, features); left out when predictions are
    gathered across ranks for the evaluator."""
    monitor: ClassVar[str]
    """Default metric selecting the best checkpoint (higher is better)."""

    config: Any

    @staticmethod
    def check_extras(value: Any) -> str | None:
        """What is wrong with a checkpoint's ``extras[extras]`` entry, or None."""
        ...

    @classmethod
    def build(
        cls,
        config: Any,
        device: torch.device,
        dist: DistContext = SINGLE,
        init: Mapping[str, Any] | None = None,
    ) -> Built:
        """Task, model and loaders of a training run (``init``: the encoder weights of
        ``train.init_from``, loaded before any feature is cached)."""
        ...

    @classmethod
    def restore(
        cls, checkpoint: dict[str, Any], source: str, overrides: Sequence[str] = (), device: str = "auto"
    ) -> Restored:
        """Task and model of a loaded checkpoint, its config changed by ``overrides`` first."""
        ...

    @classmethod
    def eval_loader(cls, config: Any, model: nn.Module, split: str, device: torch.device) -> Any:
        """The loader ``evaluate`` scores on ``split``."""
        ...

    def training_step(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]: ...
    def predict_step(self, model: nn.Module, batch: Mapping[str, Any]) -> Any: ...
    def make_evaluator(self) -> Evaluator: ...
    def parameter_groups(self, model: nn.Module) -> list[dict[str, Any]]: ...
    def checkpoint_extras(self) -> dict[str, Any]: ...


@dataclass
class Built:
    """A training run, set up: ``fit(task, model, train, val, ...)`` takes it from here."""

    task: Task
    model: nn.Module
    train: Any
    val: Any


@dataclass
class Restored:
    """A checkpoint's task (with its config, vocabulary or class names) and model, on ``device``, in eval
    mode."""

    task: Task
    model: nn.Module
    device: torch.device

    @property
    def config(self) -> ExperimentConfig:
        return self.task.config

    @classmethod
    def build(
        cls,
        task: Task,
        make_model: Callable[[], nn.Module],
        checkpoint: dict[str, Any],
        source: str,
        device: str | torch.device,
    ) -> Restored:
        device = resolve_device(device) if isinstance(device, str) else device
        model = restore_model(source, make_model, checkpoint["model"])
        return cls(task, model.to(device).eval(), device)


def build_encoder(config: Any, load_weights: bool = True, pooled: bool = False) -> ImageEncoder:
    """The configured encoder; ``load_weights=False`` when its weights will come from a checkpoint.
    ``pooled``: one vector per image whatever ``model.encoder.output`` says (the video tasks read one
    vector per frame)."""
    enc = config.model.encoder
    output = "pooled" if pooled else enc.output
    return ImageEncoder(
        enc.name, enc.weights, output, enc.trainable(), enc.image_size, load_weights, enc.resize
    )


def parameter_groups(config: Any, model: nn.Module) -> list[dict[str, Any]]:
    """Two optimiser groups: every parameter outside ``model.encoder`` (decoder, temporal encoder,
    classifier) at ``train.lr``, and the encoder's at the encoder's own rate (``learning_rate``)."""
    head = [p for name, p in model.named_parameters() if not name.startswith("encoder.")]
    return [
        {"params": head, "lr": config.train.lr},
        {
            "params": list(model.encoder.parameters()),
            "lr": config.model.encoder.learning_rate(config.train.lr),
        },
    ]


def fit_normalization(
    model: nn.Module,
    items: Any,
    collate: Callable[[list[Any]], Any],
    raw: Callable[[nn.Module, Mapping[str, Any]], torch.Tensor],
    seed: int,
    batch_size: int,
    device: torch.device,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> None:
    """Set ``model.norm``'s feature statistics from training ``items`` (``raw(model, batch)``: a batch's
    features before normalisation), computed by the encoder in the mode it trains in.

    A trained encoder's batch norm uses batch statistics in training; its running statistics, before any
    training, are those of no data (mean 0, variance 1), and a random-init network's features computed
    with them are of another scale entirely (statistics fitted that way blew the decoder's input up by
    orders of magnitude). The pass also moves those running statistics towards the data's, as a training
    pass would. A frozen encoder is in eval mode either way."""
    encoder = model.encoder
    was_training = encoder.training
    encoder.to(device).train()  # frozen stages stay in eval mode
    model.norm.to(device)

    def features(batch: Mapping[str, Any]) -> torch.Tensor:
        return raw(model, {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)})

    fit_feature_norm(model.norm, items, collate, features, seed, max_items=max_items, batch_size=batch_size)
    encoder.train(was_training)


def apply_overrides(checkpoint: dict[str, Any], source: str, overrides: Sequence[str]) -> Any:
    """The checkpoint's config with ``key=value`` overrides applied (e.g. data paths on another machine)."""
    config = config_from_dict(checkpoint["config"], source=source)
    if overrides:
        config = with_overrides(config, list(overrides), "checkpoint config")
    return config


def encoder_state(model_state: Mapping[str, Any]) -> dict[str, Any]:
    """The encoder's part of a model's state dict (every task's model keeps its CNN in ``.encoder``)."""
    return {k.removeprefix("encoder."): v for k, v in model_state.items() if k.startswith("encoder.")}


def start_encoder(encoder: nn.Module, init: Mapping[str, Any] | None) -> nn.Module:
    """Give a freshly built encoder the weights of ``train.init_from`` (``init``: ``encoder_state`` of the
    checkpoint) before anything derived from its weights is computed: the feature cache, which its
    weights key, and the feature statistics. Without ``init`` it is returned as built.

    A mismatch is left to ``train.init_weights``, which loads the whole model and names the problem."""
    if init:
        with contextlib.suppress(RuntimeError, KeyError, TypeError):
            encoder.load_state_dict(dict(init))
    return encoder
