"""Shared pieces of the benchmark suite: figures, interleaved timing, machine facts, small data helpers.

Every figure is a ratio of two measurements taken in the same run (a baseline and a candidate). The
sides are timed back to back in rounds (in reversed order every other round, so neither always runs
first), a ratio is taken within each round, where both sides saw about the same load from other
processes, and the figure is the median of those per-round ratios. The ratio of each side's best round
(what ``timeit`` would report) is kept in the details for comparison.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = REPO_ROOT / "tests"
REAL_VIDEOS_DIR = REPO_ROOT.parent / "shared" / "data" / "real_videos"


@dataclass
class Figure:
    """One benchmark figure: ``value`` compared with ``target`` by ``op`` (``>=`` or ``<=``).

    A figure without a target is informational. A skipped figure has ``value`` None and says why.
    """

    key: str
    title: str
    value: float | None
    target: float | None
    op: Literal[">=", "<="] = ">="
    unit: str = "x"
    baseline: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    @property
    def met(self) -> bool | None:
        """Whether the target is met; None when skipped or informational."""
        if self.value is None or self.target is None:
            return None
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


@dataclass
class Context:
    """What every benchmark receives: the mode, a scratch folder and a logger (stderr)."""

    quick: bool
    workdir: Path

    def log(self, message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    def child_env(self) -> dict[str, str]:
        """Environment for benchmark subprocesses: one thread each in quick mode (smoke runs only)."""
        env = dict(os.environ)
        if self.quick:
            env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        return env


@dataclass
class Timings:
    """Seconds per round of each side of an interleaved measurement."""

    rounds: dict[str, list[float]]

    def best(self, name: str) -> float:
        return min(self.rounds[name])

    def median(self, name: str) -> float:
        return statistics.median(self.rounds[name])

    def ratios(self, numerator: str, denominator: str, scale: float = 1.0) -> list[float]:
        """``scale * numerator / denominator`` within each round."""
        pairs = zip(self.rounds[numerator], self.rounds[denominator], strict=True)
        return [round(scale * n / d, 4) for n, d in pairs]

    def ratio(self, numerator: str, denominator: str, scale: float = 1.0) -> float:
        """Median over rounds of ``scale * numerator / denominator`` (times, so: baseline over candidate)."""
        return statistics.median(self.ratios(numerator, denominator, scale))

    def ratio_details(self, numerator: str, denominator: str, scale: float = 1.0) -> dict[str, object]:
        """Per-round ratios and the ratio of best rounds, for the JSON details."""
        return {
            "per_round_ratios": self.ratios(numerator, denominator, scale),
            "best_round_ratio": round(scale * self.best(numerator) / self.best(denominator), 4),
        }

    def summary(self) -> dict[str, dict[str, float | list[float]]]:
        return {
            name: {"best_s": round(min(v), 4), "median_s": round(statistics.median(v), 4), "rounds_s": v}
            for name, v in self.rounds.items()
        }


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` takes (wall clock)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(rounds: int, sides: dict[str, Callable[[], object]]) -> Timings:
    """Time each side once per round, for ``rounds`` rounds (order reversed every other round).

    A side that returns a float has measured itself (e.g. up to a subprocess's last output line): that
    number is its time; otherwise the wall-clock time of the call is.
    """
    result: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(rounds):
        order = list(sides.items()) if r % 2 == 0 else list(sides.items())[::-1]
        for name, fn in order:
            start = time.perf_counter()
            measured = fn()
            elapsed = measured if isinstance(measured, float) else time.perf_counter() - start
            result[name].append(round(elapsed, 5))
    return Timings(result)


def machine_info() -> dict[str, Any]:
    """Facts that qualify the numbers: CPU, threads, versions, current load."""
    import torch
    import torchvision

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def proc_status_mb(keys: Iterable[str] = ("VmHWM", "VmRSS", "RssAnon", "RssFile")) -> dict[str, float]:
    """Memory counters of this process from ``/proc/self/status``, in MiB (Linux only)."""
    wanted = set(keys)
    out: dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in wanted:
                out[name] = int(value.split()[0]) / 1024
    return out


def padded_vocabulary(tokenized: Iterable[list[str]], size: int):
    """The corpus vocabulary padded with filler words to ``size`` entries (a realistic output layer).

    Generated datasets have a few dozen words; real captioning vocabularies have thousands, and the
    decoder's output layer (hidden x vocab) is a large part of its cost.
    """
    from vision2seq.data.vocab import SPECIALS, Vocabulary

    words = Vocabulary.build(tokenized, min_freq=1).words
    fillers = (f"filler{i:05d}" for i in range(size))
    extra = [w for w, _ in zip(fillers, range(max(0, size - len(words))), strict=False)]
    vocab = Vocabulary([*words, *extra])
    assert tuple(vocab.words[: len(SPECIALS)]) == SPECIALS
    return vocab


def fixtures_module():
    """``tests/video_fixtures.py`` (the PyAV video writer the tests use), imported from the repository."""
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    import video_fixtures

    return video_fixtures
