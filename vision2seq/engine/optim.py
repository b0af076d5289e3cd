"""Optimiser and learning-rate schedule from the ``train`` section of a config."""

from __future__ import annotations

import math
from typing import Any

import torch

from vision2seq.config import TrainConfig


def build_optimizer(groups: list[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD over the parameter groups' trainable parameters (frozen ones are left out)."""
    groups = [g for g in groups if any(p.requires_grad for p in g["params"])]
    for g in groups:
        g["params"] = [p for p in g["params"] if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


MAX_WARMUP_FRACTION = 0.1
"""A fixed ``warmup_steps`` is clamped to this share of the run: a 200-step warm-up in a 60-step run
would keep the learning rate below a third of its value for the whole run."""


def warmup_steps(cfg: TrainConfig, total_steps: int) -> tuple[int, str | None]:
    """The effective linear warm-up of a run of ``total_steps`` optimiser steps, and a warning when the
    configured ``warmup_steps`` had to be clamped (None otherwise)."""
    if cfg.warmup_fraction > 0:
        return max(1, round(cfg.warmup_fraction * total_steps)), None
    limit = max(0, int(MAX_WARMUP_FRACTION * total_steps))
    if cfg.warmup_steps > limit:
        return limit, (
            f"train.warmup_steps={cfg.warmup_steps} is more than {MAX_WARMUP_FRACTION:.0%} of the run's "
            f"{total_steps} steps; warming up for {limit} steps (set train.warmup_fraction instead)"
        )
    return cfg.warmup_steps, None


def describe_schedule(cfg: TrainConfig, total_steps: int, steps_per_epoch: int) -> str:
    """One line saying what the learning rate will do over the run (printed when training starts)."""
    warm, _ = warmup_steps(cfg, total_steps)
    decay = {
        "none": "constant",
        "cosine": f"cosine to 0 over steps {warm}-{total_steps}",
        "step": f"x{cfg.lr_gamma} every {cfg.lr_step_epochs * steps_per_epoch} steps",
        "plateau": f"x{cfg.lr_gamma} when {cfg.monitor or 'the monitored metric'} stalls",
    }[cfg.scheduler]
    lr = f"lr {cfg.lr:g}{lr_source(cfg)}"
    return f"schedule: {lr}, warm-up {warm} steps, decay {decay}, {total_steps} total steps"


def lr_source(cfg: TrainConfig) -> str:
    """Where an SCST run's learning rate came from (``load_config`` chose it), for the schedule line; ""
    for cross-entropy, whose ``train.lr`` is the config's."""
    if cfg.objective != "scst":
        return ""
    if cfg.lr == cfg.scst_lr:
        return " (train.scst_lr, the SCST default: train.lr is cross-entropy's; train.lr=... to change)"
    return " (train.lr, set for this SCST run)"


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int, steps_per_epoch: int
) -> Any:
    """A per-optimiser-step ``LambdaLR`` (linear warm-up, then the configured decay), or ``plateau``.

    Cosine decays over the steps after the warm-up, so it reaches 0 at the run's last step whatever the
    warm-up length.
    """
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.lr_gamma, patience=1
        )
    warm, _ = warmup_steps(cfg, total_steps)

    def factor(step: int) -> float:  # stepped once per optimiser step
        if step < warm:
            return (step + 1) / warm
        if cfg.scheduler == "cosine":
            progress = min(1.0, (step - warm) / max(1, total_steps - warm))
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if cfg.scheduler == "step":
            return cfg.lr_gamma ** (step // (cfg.lr_step_epochs * steps_per_epoch))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
