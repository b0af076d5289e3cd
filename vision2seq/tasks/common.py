"""What every task module returns to the loop and the inference classes, and the helpers they share."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vision2seq.checkpoint import restore_model
from vision2seq.config import ExperimentConfig, config_from_dict, with_overrides
from vision2seq.distributed import resolve_device


@dataclass
class Built:
    """A training run, set up: ``fit(task, model, train, val, ...)`` takes it from here."""

    task: Any
    model: nn.Module
    train: Any
    val: Any


@dataclass
class Restored:
    """A checkpoint's task (with its config, vocabulary or class names) and model, on ``device``, in eval
    mode."""

    task: Any
    model: nn.Module
    device: torch.device

    @property
    def config(self) -> ExperimentConfig:
        return self.task.config

    @classmethod
    def build(
        cls,
        task: Any,
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
