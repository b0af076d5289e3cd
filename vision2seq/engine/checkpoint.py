"""One self-describing checkpoint file: weights, the full config and the vocabulary or class names.

Task-blind: what each task needs from a file is checked by ``tasks.checkpoint_task``.

Files are written atomically (temporary file, fsync, rename) so a run killed while saving leaves the
previous checkpoint intact, and read with ``torch.load(weights_only=True)``, which refuses to execute
code from the file: only tensors, numbers, strings and plain containers are accepted. Only the zip
archives ``torch.save`` writes are read (never torch's legacy raw-pickle format), and every failure is a
one-line `CheckpointError` naming the file.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vision2seq.errors import UserError
from vision2seq.files import WriteError, atomic_write

FORMAT_VERSION = 1
"""Bumped when the layout below changes; a newer file is refused with a clear message."""


class CheckpointError(UserError):
    """A checkpoint that is missing, damaged, unsafe or meant for another task."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically write ``payload`` (plus the format version) to ``path``.

    ``payload`` holds ``task``, ``config`` (plain dict), ``extras`` (vocabulary / class names), ``model``
    (state dict) and, for resuming, ``optimizer``, ``scheduler``, ``epoch``, ``step``, ``rng``, ... .
    """
    try:
        with atomic_write(path, "wb", "save checkpoint") as f:
            torch.save({"format_version": FORMAT_VERSION, **payload}, f)
    except WriteError as exc:
        # A full disk or a read-only folder is the user's to fix: one line, not torch's chained tracebacks.
        raise CheckpointError(str(exc)) from None


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


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely, on the CPU (``tasks.checkpoint_task`` then checks it is for the task).

    Raises:
        CheckpointError: missing/truncated file, content that would run code, a newer format.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file (give the .pt file inside it)")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    size = _readable_size(path)
    if size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    if not zipfile.is_zipfile(path):
        # Checkpoints are the zip archives torch.save writes; torch's legacy raw-pickle format is never
        # read (it is what a truncated zip, a text file or a hand-made pickle looks like to torch.load).
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): not a torch.save zip archive"
        )
    _check_declared_size(path, size)
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
    _check_content(path, payload)
    # Checkpoints written before ``model.encoder.resize`` existed were trained on centre crops.
    encoder: Any = payload.get("config")
    for key in ("model", "encoder"):
        encoder = encoder.get(key) if isinstance(encoder, dict) else None
    if isinstance(encoder, dict):
        encoder.setdefault("resize", "crop")
    return payload


MAX_ZIP_RATIO = 10
"""A checkpoint may declare at most this many times its own size inside (``torch.save`` stores its
entries uncompressed, so a real one declares about its size)."""
ZIP_SLACK = 1 << 20


def _readable_size(path: Path) -> int:
    """The file's size, after checking that it can be opened: a file we may not read is "permission
    denied", not "corrupt" (``zipfile.is_zipfile`` would hide why it failed)."""
    try:
        with open(path, "rb") as f:
            return os.fstat(f.fileno()).st_size
    except PermissionError:
        raise CheckpointError(f"{path}: cannot read checkpoint: permission denied") from None
    except OSError as exc:
        raise CheckpointError(
            f"{path}: cannot read checkpoint: {_one_line(exc.strerror or str(exc))}"
        ) from None


def _check_declared_size(path: Path, size: int) -> None:
    """Refuse a zip bomb from its directory alone, before ``torch.load`` allocates what it declares."""
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {_one_line(str(exc) or 'bad zip')}"
        ) from None
    if declared > MAX_ZIP_RATIO * size + ZIP_SLACK:
        raise CheckpointError(
            f"{path}: refused: the {size:,}-byte file declares {declared:,} bytes inside (a zip bomb?); "
            "torch.save writes checkpoints uncompressed"
        )


def _check_content(path: Path, payload: dict[str, Any]) -> None:
    """Weights that are all finite (what a task needs from ``extras`` is ``tasks.checkpoint_task``'s check).

    Raises:
        CheckpointError: a NaN/inf weight (names the first tensor).
    """
    model = payload.get("model")
    if isinstance(model, dict):
        for name, tensor in model.items():
            if (
                isinstance(tensor, torch.Tensor)
                and tensor.is_floating_point()
                and not tensor.isfinite().all()
            ):
                raise CheckpointError(
                    f"{path}: weight {name!r} holds NaN or infinite values (a diverged or damaged model); "
                    "use an earlier checkpoint"
                )


def restore_model(path: str | Path, build: Callable[[], nn.Module], state: dict[str, Any]) -> nn.Module:
    """``build()`` the model a checkpoint's config describes and load its weights into it.

    Raises:
        CheckpointError: the stored weights do not fit the stored config (edited or damaged file).
    """
    _check_shapes(path, build, state)
    try:
        model = build()
        model.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        reason = _one_line(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise CheckpointError(f"{path}: weights do not match the checkpoint's config ({reason})") from None
    return model


def _check_shapes(path: str | Path, build: Callable[[], nn.Module], state: dict[str, Any]) -> None:
    """Compare the layers the config asks for with the stored weights on the ``meta`` device (no memory
    is allocated), so that an edited config asking for huge layers is refused before they are built.

    Raises:
        CheckpointError: a stored weight of another shape than the config's model asks for.
    """
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    except Exception:  # a model that cannot be dry-run is checked by the real build below
        return
    stored = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    # Only shapes: a missing or extra entry is the real load's to judge (older files lack some buffers,
    # which the model's own loading fills in).
    for name, shape in expected.items():
        if name in stored and stored[name] != shape:
            raise CheckpointError(
                f"{path}: weights do not match the checkpoint's config ({name!r} is {list(stored[name])} in "
                f"the file, the config asks for {list(shape)})"
            )
    # Missing entries may be small buffers an older file lacks; large missing layers are refused here.
    asked = sum(math.prod(shape) for shape in expected.values())
    held = sum(math.prod(shape) for shape in stored.values())
    if asked > 2 * held + (1 << 20):
        raise CheckpointError(
            f"{path}: weights do not match the checkpoint's config (it asks for {asked:,} values, the file "
            f"holds {held:,})"
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
