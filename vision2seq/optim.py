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


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int, steps_per_epoch: int
) -> Any:
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.lr_gamma, patience=1
        )

    def factor(step: int) -> float:  # stepped once per optimiser step
        warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        if cfg.scheduler == "cosine":
            progress = min(1.0, step / max(1, total_steps))
            return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
        if cfg.scheduler == "step":
            return warm * cfg.lr_gamma ** (step // (cfg.lr_step_epochs * steps_per_epoch))
        return warm

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
