"""``vision2seq evaluate``: score a checkpoint on a split of its dataset (or another, via overrides)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vision2seq.engine.loop import evaluate
from vision2seq.resources import ensure_threads
from vision2seq.tasks import restore_checkpoint
from vision2seq.train import check_data_paths


def evaluate_checkpoint(
    path: str | Path,
    split: str = "test",
    overrides: Sequence[str] = (),
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """The task's metrics of the checkpoint at ``path`` on ``split`` (e.g. BLEU-4, CIDEr-D; top-1)."""
    ensure_threads()  # the CLI's automatic thread count, unless the user chose one
    task, restored = restore_checkpoint(path, None, overrides, device)
    check_data_paths(restored.config)  # "does not exist", before any data is parsed
    loader = task.eval_loader(restored.config, restored.model, split, restored.device)
    return evaluate(restored.task, restored.model, loader, restored.device, progress=progress)
