"""Multi-process training with PyTorch's own engine: ``torchrun --nproc_per_node N -m vision2seq train ...``.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; ``setup`` then joins the process group (NCCL on
GPUs, gloo on the CPU) and picks this process's device. Without torchrun everything here degrades to a
single process and no collective is ever called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from vision2seq.errors import UsageError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, logs and progress bars."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (just ``[obj]`` in a single process)."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, value: float) -> float:
        """The mean of ``value`` over ranks."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size


SINGLE = DistContext()


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else the CPU; otherwise ``torch.device(name)``, checked to exist.

    Raises:
        UsageError: an unknown device name, or a CUDA device this machine does not have.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UsageError(f"device {name!r}: not a device name (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"device {name!r}: no CUDA GPU is available on this machine (use cpu or auto)")
        if device.index is not None and device.index >= count:
            raise UsageError(
                f"device {name!r}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}"
            )
    elif device.type not in ("cpu", "meta") and not _backend_available(device.type):
        raise UsageError(
            f"device {name!r}: the {device.type} backend is not available here (use cpu or auto)"
        )
    return device


def _backend_available(kind: str) -> bool:
    backend = getattr(torch, kind, None) or getattr(torch.backends, kind, None)
    available = getattr(backend, "is_available", None)
    return bool(available and available())


def setup(device: str = "auto") -> tuple[DistContext, torch.device]:
    """Join the torchrun process group if there is one; return the context and this process's device."""
    world = _env_int("WORLD_SIZE", "1", 1)
    if world <= 1:
        return SINGLE, resolve_device(device)
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise UsageError(
            f"WORLD_SIZE={world} asks for a distributed run, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set: start it with torchrun, or unset WORLD_SIZE "
            "(left over from another job?) for a single process"
        )
    rank, local_rank = _env_int("RANK", None, 0), _env_int("LOCAL_RANK", "0", 0)
    if rank >= world:
        raise UsageError(f"RANK={rank} is not below WORLD_SIZE={world}: start the run with torchrun")
    chosen = resolve_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return DistContext(rank, world, local_rank), chosen


def _env_int(name: str, default: str | None, minimum: int) -> int:
    """The integer environment variable ``name`` (torchrun's), or a one-line ``UsageError``."""
    text = os.environ.get(name, default) if default is not None else os.environ[name]
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = None
    if value is None or value < minimum:
        raise UsageError(
            f"environment variable {name}={text!r} is not an integer >= {minimum}; torchrun sets it: unset "
            f"it (left over from another job?) or start the run with torchrun"
        )
    return value


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
