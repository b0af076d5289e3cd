"""``vision2seq evaluate``: score a checkpoint on a split of its dataset (or another, via overrides)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vision2seq.checkpoint import check_task, load_checkpoint
from vision2seq.engine import evaluate


def evaluate_checkpoint(
    path: str | Path,
    split: str = "test",
    overrides: Sequence[str] = (),
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Metrics of the checkpoint at ``path`` on ``split`` (BLEU-1..4 for captions, accuracy for clips)."""
    ckpt = load_checkpoint(path)
    check_task(path, ckpt, ckpt.get("task"))
    if ckpt.get("task") == "video_classification":
        from vision2seq.classifier import evaluate_video_checkpoint

        return evaluate_video_checkpoint(ckpt, str(path), split, overrides, device, progress)
    from vision2seq.captioner import Captioner
    from vision2seq.data.caption_datasets import build_eval_loader
    from vision2seq.tasks.captioning import CaptioningTask

    captioner = Captioner.from_payload(ckpt, str(path), device)
    config = captioner.with_overrides(overrides)
    captioner.config = config  # generation settings may be overridden too
    loader = build_eval_loader(config, captioner.model.encoder, captioner.device, split)
    task = CaptioningTask(config, captioner.vocab)
    return evaluate(task, captioner.model, loader, captioner.device, progress=progress)
