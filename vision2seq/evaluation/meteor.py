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

The jar is an external process, so it is never trusted to answer: every answer has a deadline
(``START_TIMEOUT_S`` for the first, which waits for the jar to load, ``ANSWER_TIMEOUT_S`` after), after
which the process is killed and the call fails with one line; every caption and reference is cut to
``MAX_SEGMENT_WORDS`` words before it is sent (a 550,000-character caption would otherwise exhaust the
jar's memory); and lines that are not answers (e.g. the JVM's ``Picked up JAVA_TOOL_OPTIONS`` banner)
are skipped.
"""

from __future__ import annotations

import atexit
import os
import re
import select
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
START_TIMEOUT_S = 600.0
"""Seconds to wait for the jar's first answer (it loads a large paraphrase table first)."""
ANSWER_TIMEOUT_S = 120.0
"""Seconds to wait for each later answer."""
MAX_SEGMENT_WORDS = 200
"""Words of a caption or reference that METEOR scores (captions are a few dozen)."""
_NUMBER = r"(?:[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?|NaN|-?Infinity)"
_ANSWER = re.compile(rf"{_NUMBER}(?: {_NUMBER})*")
"""What an answer line looks like: numbers separated by spaces (statistics, or one score)."""
_MAX_SKIPPED = 1000


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
        self._buffer = b""
        self._answered = False

    def _stopped(self) -> MetricUnavailableError:
        self._process.wait()
        self._stderr.seek(0)
        error = self._stderr.read().decode(errors="replace")
        last = error.strip().splitlines()[-1] if error.strip() else f"exit status {self._process.returncode}"
        return MetricUnavailableError(f"the METEOR jar stopped: {last[:300]}")

    def _raw_line(self) -> str:
        """The jar's next output line, within the deadline (the jar is killed when it passes)."""
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        timeout = ANSWER_TIMEOUT_S if self._answered else START_TIMEOUT_S
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                self._process.kill()
                raise MetricUnavailableError(
                    f"the METEOR jar did not answer within {timeout:g} s and was stopped (is `java` a "
                    "working Java runtime?); leave meteor out of --metrics to score without it"
                )
            data = os.read(fd, 1 << 16)
            if not data:
                raise self._stopped()
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def _read_line(self) -> str:
        """The next answer line; other output (a JVM banner, warnings) is skipped."""
        for _ in range(_MAX_SKIPPED):
            line = self._raw_line()
            if _ANSWER.fullmatch(line):
                self._answered = True
                return line
        raise MetricUnavailableError("the METEOR jar printed no scores (unexpected output)")

    def _write(self, lines: Sequence[str]) -> threading.Thread:
        """Send ``lines`` from a thread, so that a jar that stops reading cannot block us forever (its
        answers' deadline then stops it, which ends the write)."""
        assert self._process.stdin is not None
        stdin = self._process.stdin
        data = "".join(f"{line}\n" for line in lines).encode()

        def send() -> None:
            try:
                stdin.write(data)
                stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the jar stopped: the read that follows reports it

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        return thread

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
            " ||| ".join(("SCORE", " ||| ".join(_bounded(r) for r in refs), _bounded(hyp.replace("|||", ""))))
            for hyp, refs in zip(candidates, references, strict=True)
        ]
        with self._lock:
            stats: list[str] = []
            for start in range(0, len(lines), _CHUNK):
                chunk = lines[start : start + _CHUNK]
                writer = self._write(chunk)
                stats.extend(self._read_line() for _ in chunk)
                writer.join()
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


def _bounded(text: str) -> str:
    """One line of at most ``MAX_SEGMENT_WORDS`` words (the jar reads a line per segment)."""
    return " ".join(text.split()[:MAX_SEGMENT_WORDS])


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
