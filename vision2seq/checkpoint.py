"""One self-describing checkpoint file: weights, the full config and the vocabulary or class names.

Files are written atomically (temporary file, fsync, rename) so a run killed while saving leaves the
previous checkpoint intact, and read with ``torch.load(weights_only=True)``, which refuses to execute
code from the file: only tensors, numbers, strings and plain containers are accepted.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

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


def load_checkpoint(path: str | Path, task: str | None = None) -> dict[str, Any]:
    """Read a checkpoint safely, on the CPU.

    Args:
        path: the ``.pt`` file.
        task: when given, the task the checkpoint must have been trained for.

    Raises:
        CheckpointError: missing/truncated file, content that would run code, a newer format, wrong task.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses globals (classes, functions) that a crafted file would need to run code.
        reason = str(exc).splitlines()[0] if str(exc) else "unsupported content"
        raise CheckpointError(
            f"{path}: refused to load: the file contains objects other than tensors and plain data "
            f"(possibly code); only vision2seq checkpoints are accepted ({reason})"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {reason}"
        ) from None
    if not isinstance(payload, dict) or "format_version" not in payload or "model" not in payload:
        raise CheckpointError(f"{path}: not a vision2seq checkpoint (no format_version/model entries)")
    version = payload["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this vision2seq supports "
            f"({FORMAT_VERSION}); upgrade vision2seq"
        )
    if task is not None and payload.get("task") != task:
        raise CheckpointError(
            f"{path}: this is a {payload.get('task')!r} checkpoint, but a {task!r} checkpoint is needed"
        )
    return payload
