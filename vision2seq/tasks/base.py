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
