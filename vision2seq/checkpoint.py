"""One self-describing checkpoint file: weights, the full config and the vocabulary or class names.

Files are written atomically (temporary file, fsync, rename) so a run killed while saving leaves the
previous checkpoint intact, and read with ``torch.load(weights_only=True)``, which refuses to execute
code from the file: only tensors, numbers, strings and plain containers are accepted. Only the zip
archives ``torch.save`` writes are read (never torch's legacy raw-pickle format), and every failure is a
one-line `CheckpointError` naming the file.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vision2seq.errors import UserError

FORMAT_VERSION = 1
"""Bumped when the layout below changes; a newer file is refused with a clear message."""


class CheckpointError(UserError):
    """A checkpoint that is missing, damaged, unsafe or meant for another task."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically write ``payload`` (plus the format version) to ``path``.

    ``payload`` holds ``task``, ``config`` (plain dict), ``extras`` (vocabulary / class names), ``model``
    (state dict) and, for resuming, ``optimizer``, ``scheduler``, ``epoch``, ``step``, ``rng``, ... .
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format_version": FORMAT_VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


TASK_EXTRAS = {"captioning": "vocab", "video_classification": "labels"}
"""The tasks a checkpoint can hold, and the entry of ``extras`` each one needs."""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(_ANSI.sub("", text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def refusal_reason(exc: pickle.UnpicklingError) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in a few words, without torch's advice to
    load it unsafely (``weights_only=False``) that surrounds the reason in its message."""
    text = _ANSI.sub("", str(exc))
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it asks to import and call {found.group(1)!r}"
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    if found:
        return _one_line(found.group(1).split(". ")[0])
    boilerplate = ("Weights only load failed", "Check the documentation", "Please file an issue")
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip() and not p.startswith(boilerplate)]
    return _one_line(paragraphs[0]) if paragraphs else "unsupported content"


def load_checkpoint(path: str | Path, task: str | None = None) -> dict[str, Any]:
    """Read a checkpoint safely, on the CPU.

    Args:
        path: the ``.pt`` file.
        task: when given, the task the checkpoint must have been trained for; the entries that task
            needs (``config``, ``extras``, ``model``) are then checked too.

    Raises:
        CheckpointError: missing/truncated file, content that would run code, a newer format, wrong task.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    if not zipfile.is_zipfile(path):
        # Checkpoints are the zip archives torch.save writes; torch's legacy raw-pickle format is never
        # read (it is what a truncated zip, a text file or a hand-made pickle looks like to torch.load).
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): not a torch.save zip archive"
        )
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says it all
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses globals (classes, functions) that a crafted file would need to run code,
        # and any pickle instruction outside its small safe subset.
        raise CheckpointError(
            f"{path}: refused to load: not a vision2seq checkpoint, or unsafe ({refusal_reason(exc)}); only "
            "tensors and plain data are accepted, and nothing from the file was run"
        ) from None
    except MemoryError:
        raise CheckpointError(f"{path}: not a readable checkpoint (declares more data than fits)") from None
    except Exception as exc:
        # Any failure to parse an untrusted file is the file's fault: RuntimeError/zipfile errors (a
        # truncated zip), EOFError, OSError, and odd ones such as KeyError for a text file.
        if isinstance(exc, (RuntimeError, OSError, EOFError, zipfile.BadZipFile)) and str(exc):
            reason = _one_line(re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", str(exc)).split(". ")[0])
        else:
            reason = f"unrecognised content ({type(exc).__name__})"
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {reason}"
        ) from None
    if not isinstance(payload, dict) or "format_version" not in payload or "model" not in payload:
        raise CheckpointError(
            f"{path}: not a vision2seq checkpoint (no format_version/model entries; a plain state dict or "
            "another program's file?)"
        )
    version = payload["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: invalid checkpoint format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this vision2seq supports "
            f"({FORMAT_VERSION}); upgrade vision2seq"
        )
    if task is not None:
        check_task(path, payload, task)
    # Checkpoints written before ``model.encoder.resize`` existed were trained on centre crops.
    encoder: Any = payload.get("config")
    for key in ("model", "encoder"):
        encoder = encoder.get(key) if isinstance(encoder, dict) else None
    if isinstance(encoder, dict):
        encoder.setdefault("resize", "crop")
    return payload


def restore_model(path: str | Path, build: Callable[[], nn.Module], state: dict[str, Any]) -> nn.Module:
    """``build()`` the model a checkpoint's config describes and load its weights into it.

    Raises:
        CheckpointError: the stored weights do not fit the stored config (edited or damaged file).
    """
    try:
        model = build()
        model.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        reason = _one_line(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise CheckpointError(f"{path}: weights do not match the checkpoint's config ({reason})") from None
    return model


def check_task(path: str | Path, payload: dict[str, Any], task: str | None) -> None:
    """Check that a loaded checkpoint is for ``task`` and holds what that task's loaders read.

    ``load_checkpoint(path, task=...)`` runs this; callers that learn the task from the file itself
    (``vision2seq evaluate``) can run it with ``payload.get("task")``.

    Raises:
        CheckpointError: another task (or none), or a missing/malformed ``config``, ``model`` or
            ``extras`` entry.
    """
    found = payload.get("task")
    if found != task:
        other = {"captioning": "vision2seq caption", "video_classification": "vision2seq classify"}
        hint = f" (use `{other[found]}` with it)" if isinstance(found, str) and found in other else ""
        raise CheckpointError(
            f"{path}: this is a {found!r} checkpoint, but a {task!r} checkpoint is needed{hint}"
        )
    if task not in TASK_EXTRAS:
        known = ", ".join(sorted(TASK_EXTRAS))
        raise CheckpointError(f"{path}: unknown checkpoint task {task!r} (expected one of {known})")
    extras = payload.get("extras")
    needed = TASK_EXTRAS[task]
    problems = []
    if not isinstance(payload.get("config"), dict):
        problems.append("config")
    if not isinstance(payload.get("model"), dict):
        problems.append("model")
    if not (isinstance(extras, dict) and isinstance(extras.get(needed), list)):
        problems.append(f"extras.{needed}")
    if problems:
        raise CheckpointError(
            f"{path}: damaged {task!r} checkpoint: missing or malformed {', '.join(problems)}"
        )


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states, as plain data a checkpoint can hold."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states saved by ``rng_state`` (a resumed run draws the same numbers)."""
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
