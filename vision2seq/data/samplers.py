"""Samplers whose order depends only on (seed, epoch), sharded across distributed ranks; loader options.

A resumed run, or the same run on N processes, sees exactly the same items in the same global order:
rank ``r`` of ``w`` takes every ``w``-th index of the epoch's permutation starting at ``r``, so each
global batch of ``w * batch_size`` items is the same as a single process's batch of that size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Shuffled order fixed by (seed, epoch); ``rank``/``world_size`` shard it; ``start`` skips items."""

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1, dataset: Any = None) -> None:
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.dataset = dataset  # told the epoch too, when its random draws depend on it
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.start = epoch, 0
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def set_start(self, start: int) -> None:
        """Skip this rank's first ``start`` items of the epoch (resuming mid-epoch)."""
        self.start = start

    def __len__(self) -> int:
        return -(-self.size // self.world_size) - self.start

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=g).tolist()
        per_rank = -(-self.size // self.world_size)
        order += order[: per_rank * self.world_size - self.size]  # pad so every rank gets as many
        return iter(order[self.rank :: self.world_size][self.start :])


def lone_last_batch(size: int, batch_size: int, world_size: int = 1) -> bool:
    """Whether an epoch of ``size`` items ends, on each rank, with a batch of a single item.

    A trained encoder's batch norm cannot take batch statistics of one image (``Expected more than 1
    value per channel``), so its training loader drops that batch (``drop_last``): the order is
    reshuffled every epoch, so a different item sits out each time and none is left out for good.
    """
    per_rank = -(-size // world_size)
    return batch_size > 1 and per_rank % batch_size == 1


class ShardSampler(Sampler[int]):
    """Evaluation order: rank ``r`` of ``w`` takes indices ``r, r + w, ...`` (no padding, no repeats)."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, size, world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def loader_options(cfg: Any, dataset: Any, workers: int, device: torch.device) -> dict[str, Any]:
    """``pin_memory`` / ``persistent_workers`` for a DataLoader from ``train`` settings (null: automatic).

    Workers are only kept alive when the dataset's items do not depend on the epoch: a persistent worker
    keeps the copy of the dataset it started with, so it would never see ``set_epoch``.
    """
    pin = cfg.pin_memory if cfg.pin_memory is not None else device.type == "cuda"
    persistent = cfg.persistent_workers
    if persistent is None:
        persistent = not hasattr(dataset, "set_epoch")
    return {"pin_memory": pin, "persistent_workers": bool(persistent) and workers > 0}
