"""How many CPU threads torch uses and how many loader worker processes a command starts.

Two things make a small machine slow. Loader workers beyond the CPUs this process may use only queue
behind each other (and torch warns about it). And torch's intra-op threads wait for each other at the
end of every operation: when another process holds one of the cores, the waiting threads spin while the
descheduled one cannot finish, so on a busy 2-core machine two threads ran a demo epoch 5-8x slower
than one thread (docs/performance.md, "Threads and loader workers"). The automatic choice therefore
leaves a core (or the current load) to everything else, and counts the decoding workers as busy cores.

Every entry point makes the choice: the CLI through :func:`configure_threads`, the Python API (the
inference classes, ``evaluate_checkpoint``, and ``train``, hence the ``vision2seq.synthetic`` helpers
and the demos) through :func:`ensure_threads`, which leaves a thread count the user chose alone.
:func:`set_threads` (also ``vision2seq.set_threads``) is the public way to choose.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

import torch

__all__ = [
    "auto_threads",
    "available_cpus",
    "configure_threads",
    "ensure_threads",
    "set_threads",
    "threads_for_run",
    "worker_count",
]

_log = logging.getLogger("vision2seq")
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# torch's count when this module was first imported: a later different count was set by the user.
_THREADS_AT_IMPORT = torch.get_num_threads()
_chosen = False  # set_threads / configure_threads / ensure_threads has decided for this process
_command_line_chose = False  # configure_threads ran: --threads (or the config) is already applied


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
    global _command_line_chose
    if requested is not None:
        threads, why = requested, "--threads / train.threads"
    elif os.environ.get("OMP_NUM_THREADS"):
        threads, why = torch.get_num_threads(), "OMP_NUM_THREADS"
    else:
        threads = auto_threads(workers)
        why = f"auto: {available_cpus()} CPUs, load {_load():.1f}, {workers} loader workers"
    _set(threads)
    _command_line_chose = True
    if announce:
        print(f"vision2seq: {threads} torch thread{'s' * (threads != 1)} ({why})", file=sys.stderr)
    return threads


def _set(threads: int) -> None:
    global _chosen
    torch.set_num_threads(threads)
    _chosen = True


def set_threads(n: int | None = None, workers: int = 0) -> int:
    """Choose how many CPU threads torch uses in this process; returns the number set.

    ``vision2seq.set_threads()`` makes the automatic choice of the command line (:func:`auto_threads`:
    the CPUs left after loader workers, the current load and one spare core); ``set_threads(n)`` sets
    ``n``. Either way vision2seq's entry points then leave the count alone for the rest of the process.

    Args:
        n: threads (>= 1), or None for the automatic choice.
        workers: loader workers that will decode while the model runs (counted as busy cores when
            ``n`` is None).
    """
    if n is not None and n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    threads = n if n is not None else auto_threads(workers)
    _set(threads)
    return threads


def _physical_cores() -> int | None:
    # torch's default intra-op count is the machine's physical cores (logical CPUs where it cannot
    # tell); /proc/cpuinfo gives them on Linux.
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    pairs = set()
    for block in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if "core id" in fields:
            pairs.add((fields.get("physical id", "0"), fields["core id"]))
    return len(pairs) or None


def user_chose_threads() -> bool:
    """Whether the thread count was chosen outside vision2seq: ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``
    set, or a ``torch.set_num_threads(n)`` that differs from torch's default (a count equal to torch's
    default cannot be told from it: use :func:`set_threads` to keep that)."""
    if any(os.environ.get(name) for name in _THREAD_VARIABLES):
        return True
    defaults = {os.cpu_count(), _physical_cores()}
    return torch.get_num_threads() != _THREADS_AT_IMPORT or _THREADS_AT_IMPORT not in defaults


def ensure_threads(workers: int = 0) -> int | None:
    """The automatic thread choice for a Python entry point, made once per process.

    Nothing changes when the count was already chosen: by :func:`set_threads` or the CLI, or by the
    user (:func:`user_chose_threads`). Returns the number set, or None when it was left alone.

    Args:
        workers: loader workers the caller starts (see :func:`auto_threads`).
    """
    global _chosen
    if _chosen:
        return None
    _chosen = True  # decided once: a later call (another model, another helper) keeps this choice
    if user_chose_threads():
        return None
    threads = auto_threads(workers)
    torch.set_num_threads(threads)
    _log.info("vision2seq: %d torch thread(s) (auto: %d CPUs, load %.1f)", threads, available_cpus(), _load())
    return threads


def threads_for_run(requested: int | None, workers: int = 0) -> int | None:
    """The thread choice of a training run started from Python (``vision2seq.train.train``).

    A count in the config (``train.threads``) is set, unless the command line already applied one
    (``--threads`` beats ``train.threads``); without one, :func:`ensure_threads` decides. Returns the
    number set, or None when the count was left alone.

    Args:
        requested: ``train.threads`` of the run's config.
        workers: the run's loader workers.
    """
    if _command_line_chose:
        return None
    if requested is not None:
        return set_threads(requested)
    return ensure_threads(workers)
