"""What every task module returns to the loop and the inference classes, and the helpers they share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
