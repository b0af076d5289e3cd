"""METEOR 1.5 through the reference jar that pycocoevalcap ships (Java), started once per process.

METEOR matches words by exact form, stem, synonym and paraphrase; there is no faithful pure-Python version,
so, like the COCO caption evaluation, this runs ``meteor-1.5.jar - - -stdio -l en -norm`` from the
``pycocoevalcap`` package (``pip install "vision2seq[meteor]"``) with ``java`` on ``PATH``. The jar loads a
large paraphrase table when it starts (tens of seconds), so one process is started on first use and
reused by every later call in this Python process (:func:`meteor_scorer`); it is stopped at exit.

Input and output follow pycocoevalcap's ``Meteor.compute_score`` exactly: the PTB-tokenized captions, one
``SCORE ||| ref ||| ... ||| hypothesis`` line per image (``|||`` removed from the hypothesis), then one
``EVAL`` line whose answer is the per-image scores and the corpus score (METEOR's own aggregate over the
statistics, not the mean of the per-image scores).
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from importlib import util
from pathlib import Path

from vision2seq.config import ConfigError
from vision2seq.evaluation._common import CorpusScore, check_corpus

__all__ = ["MeteorScorer", "MetricUnavailableError", "meteor_scorer", "pycocoevalcap_dir"]

# Lines written before their answers are read: small enough that neither pipe buffer can fill up.
_CHUNK = 64


class MetricUnavailableError(ConfigError):
    """A metric was asked for whose requirements (Java, the ``meteor`` extra, SPICE's models) are missing."""


def pycocoevalcap_dir(metric: str) -> Path:
    """Return the installed ``pycocoevalcap`` package folder, which holds the METEOR and SPICE jars.

    Args:
        metric: The metric that needs it, for the message.

    Raises:
        MetricUnavailableError: If Java or the package is missing.
    """
    spec = util.find_spec("pycocoevalcap")
    # pycocoevalcap has no __init__.py: it is a namespace package, found by its folders, not its origin.
    folders = [Path(p) for p in (spec.submodule_search_locations or [])] if spec is not None else []
    folder = next((f for f in folders if (f / "meteor").is_dir()), None)
    if folder is None:
        raise MetricUnavailableError(
            f'{metric} needs the reference jar from pycocoevalcap: pip install "vision2seq[meteor]" '
            f"(or leave {metric.lower()} out of --metrics)"
        )
    if shutil.which("java") is None:
        raise MetricUnavailableError(
            f"{metric} runs the reference jar and needs Java: install a Java runtime (java on PATH) "
            f"or leave {metric.lower()} out of --metrics"
        )
    return folder


class MeteorScorer:
    """One running METEOR 1.5 process; thread-safe.

    Args:
        jar: ``meteor-1.5.jar``; its folder must also hold ``data/paraphrase-en.gz``.
    """

    def __init__(self, jar: Path) -> None:
        if not jar.is_file():
            raise MetricUnavailableError(f"{jar}: METEOR jar not found; reinstall pycocoevalcap")
        command = ["java", "-jar", "-Xmx2G", jar.name, "-", "-", "-stdio", "-l", "en", "-norm"]
        # A file, not a pipe, for its messages: an unread pipe could fill up and block the jar.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - open as long as the process, closed in close()
        self._process = subprocess.Popen(
            command, cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )
        self._lock = threading.Lock()

    def _read_line(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait()
            self._stderr.seek(0)
            error = self._stderr.read().decode(errors="replace")
            last = (
                error.strip().splitlines()[-1] if error.strip() else f"exit status {self._process.returncode}"
            )
            raise MetricUnavailableError(f"the METEOR jar stopped: {last}")
        return line.decode().strip()

    def _write(self, lines: Sequence[str]) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write("".join(f"{line}\n" for line in lines).encode())
            self._process.stdin.flush()
        except BrokenPipeError:
            self._read_line()  # raises with the jar's last words
            raise

    def score(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> CorpusScore:
        """Compute METEOR of PTB-tokenized captions (space-joined tokens, as pycocoevalcap passes them).

        Args:
            candidates: One tokenized candidate string per image.
            references: For each image, its tokenized reference strings.

        Returns:
            METEOR's corpus score and the per-image scores.

        Raises:
            ValueError: If the inputs differ in length, are empty, or an image has no reference.
            MetricUnavailableError: If the jar stopped (for example out of memory).
        """
        check_corpus(candidates, references, "METEOR")
        lines = [
            " ||| ".join(("SCORE", " ||| ".join(refs), hyp.replace("|||", "").replace("  ", " ")))
            for hyp, refs in zip(candidates, references, strict=True)
        ]
        with self._lock:
            stats: list[str] = []
            for start in range(0, len(lines), _CHUNK):
                chunk = lines[start : start + _CHUNK]
                self._write(chunk)
                stats.extend(self._read_line() for _ in chunk)
            self._write(["EVAL ||| " + " ||| ".join(stats)])
            per_image = [float(self._read_line()) for _ in stats]
            score = float(self._read_line())
        return CorpusScore(score=score, per_image=per_image)

    def close(self) -> None:
        """Stop the jar."""
        with self._lock:
            if self._process.poll() is None:
                if self._process.stdin is not None:
                    self._process.stdin.close()
                self._process.kill()
                self._process.wait()
            self._stderr.close()


_scorer: MeteorScorer | None = None
_scorer_lock = threading.Lock()


def meteor_scorer() -> MeteorScorer:
    """Return this process's METEOR scorer, starting the jar on first use.

    Raises:
        MetricUnavailableError: If Java or pycocoevalcap is missing (a one-line message with the fix).
    """
    global _scorer
    with _scorer_lock:
        if _scorer is None or _scorer._process.poll() is not None:
            _scorer = MeteorScorer(pycocoevalcap_dir("METEOR") / "meteor" / "meteor-1.5.jar")
            atexit.register(_scorer.close)
        return _scorer
