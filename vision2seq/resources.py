"""How many CPU threads torch uses and how many loader worker processes a command starts.

Two things make a small machine slow. Loader workers beyond the CPUs this process may use only queue
behind each other (and torch warns about it). And torch's intra-op threads wait for each other at the
end of every operation: when another process holds one of the cores, the waiting threads spin while the
descheduled one cannot finish, so on a busy 2-core machine two threads ran a demo epoch 5-8x slower
than one thread (README, "Threads and workers"). The automatic choice therefore leaves a core (or the
current load) to everything else, and counts the decoding workers as busy cores.
"""

from __future__ import annotations

import math
import os
import sys

import torch

__all__ = ["auto_threads", "available_cpus", "configure_threads", "worker_count"]


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, as torch's loader warning counts them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS / Windows have no affinity mask
        return max(1, os.cpu_count() or 1)


def worker_count(requested: int, cpus: int | None = None) -> int:
    """Loader worker processes for ``requested`` (a config value or ``--workers``): at most one per CPU.

    Args:
        requested: the wanted number of workers (0: decode in the main process).
        cpus: the CPUs to size for (default: ``available_cpus()``).
    """
    return max(0, min(requested, cpus if cpus is not None else available_cpus()))


def _processes_per_node() -> int:
    # Under torchrun every process of the node sizes itself: the node's CPUs are shared among them.
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def auto_threads(workers: int = 0, cpus: int | None = None, load: float | None = None) -> int:
    """The automatic torch thread count: the CPUs left after workers, other load and one spare core.

    Args:
        workers: loader workers that decode while the model runs (each keeps a core busy).
        cpus: CPUs of this process (default: ``available_cpus()``, divided among torchrun's processes).
        load: the 1-minute load average (default: the system's); it counts other busy processes.
    """
    cpus = cpus if cpus is not None else available_cpus() // _processes_per_node()
    busy = max(1, math.ceil(load if load is not None else _load()))
    return max(1, cpus - workers - busy)


def configure_threads(requested: int | None, workers: int = 0, announce: bool = True) -> int:
    """Set torch's intra-op threads and say so in one stderr line; returns the number set.

    Args:
        requested: a thread count (``--threads`` / ``train.threads``), or None for the automatic choice.
            With None and ``OMP_NUM_THREADS`` set, that variable decides (torch has already read it).
        workers: loader workers the command starts (see ``auto_threads``).
        announce: print the choice (off with ``--quiet``).
    """
    if requested is not None:
        threads, why = requested, "--threads / train.threads"
    elif os.environ.get("OMP_NUM_THREADS"):
        threads, why = torch.get_num_threads(), "OMP_NUM_THREADS"
    else:
        threads = auto_threads(workers)
        why = f"auto: {available_cpus()} CPUs, load {_load():.1f}, {workers} loader workers"
    torch.set_num_threads(threads)
    if announce:
        print(f"vision2seq: {threads} torch thread{'s' * (threads != 1)} ({why})", file=sys.stderr)
    return threads
