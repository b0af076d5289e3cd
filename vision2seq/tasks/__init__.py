"""The tasks, by the name a config's ``task`` key and a checkpoint's ``task`` entry use.

A task is one class implementing ``tasks.base.Task``: class attributes ``name``, ``command`` (the command
that uses its checkpoints), ``extras`` (the ``extras`` entry its checkpoints need) and ``schema`` (its
config class); class methods ``build`` (a training run), ``restore`` (a checkpoint), ``eval_loader`` and
``check_extras``; instance methods ``training_step``, ``predict_step``, ``make_evaluator``,
``parameter_groups`` and ``checkpoint_extras`` (the loop's ``engine.Task``), and optionally
``training_module(model)``, the module the loop trains and DistributedDataParallel wraps when it is more
than the model (captioning's SCST: the model and its loss). ``train``, ``evaluate``, the checkpoint checks
and the predictor use them without branching on the task.

Adding a task: one task module here, one model file under ``models/``, one entry below, and its config
class in ``config.py``'s ``ExperimentConfig`` union (``config`` cannot import the task classes: they
import torch, and reading a config must not).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vision2seq.engine.checkpoint import CheckpointError, load_checkpoint
from vision2seq.tasks.base import Restored, Task
from vision2seq.tasks.captioning import CaptioningTask
from vision2seq.tasks.video_captioning import VideoCaptioningTask
from vision2seq.tasks.video_classification import VideoClassificationTask

TASKS: dict[str, type[Task]] = {
    task.name: task for task in (CaptioningTask, VideoClassificationTask, VideoCaptioningTask)
}


def checkpoint_task(
    path: str | Path, checkpoint: dict[str, Any], expected: str | tuple[str, ...] | None = None
) -> type[Task]:
    """The task class of a loaded checkpoint, after checking it holds what that task reads.

    Args:
        path: Where the checkpoint came from (for messages).
        checkpoint: The loaded payload (``checkpoint.load_checkpoint``).
        expected: The task (or tasks) the caller can use (``caption`` needs a captioner); None: any.

    Raises:
        CheckpointError: an unknown task, another task than ``expected``, or a missing/malformed ``config``,
            ``model`` or ``extras`` entry.
    """
    found = checkpoint.get("task")
    task = TASKS.get(found) if isinstance(found, str) else None
    accepted = (expected,) if isinstance(expected, str) else expected
    if accepted is not None and found not in accepted:
        hint = f" (use `{task.command}` with it)" if task is not None else ""
        needed = " or ".join(repr(name) for name in accepted)
        raise CheckpointError(
            f"{path}: this is a {found!r} checkpoint, but a {needed} checkpoint is needed{hint}"
        )
    if task is None:
        known = ", ".join(sorted(TASKS))
        raise CheckpointError(f"{path}: unknown checkpoint task {found!r} (expected one of {known})")
    extras = checkpoint.get("extras")
    problems = [key for key in ("config", "model") if not isinstance(checkpoint.get(key), dict)]
    if not (isinstance(extras, dict) and isinstance(extras.get(task.extras), list)):
        problems.append(f"extras.{task.extras}")
    if problems:
        raise CheckpointError(
            f"{path}: damaged {found!r} checkpoint: missing or malformed {', '.join(problems)}"
        )
    problem = task.check_extras(extras[task.extras])
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    return task


def restore_checkpoint(
    path: str | Path,
    expected: str | tuple[str, ...] | None = None,
    overrides: Sequence[str] = (),
    device: str = "auto",
) -> tuple[type[Task], Restored]:
    """Load the checkpoint at ``path`` safely, check it (``checkpoint_task``) and restore its task and
    model with ``overrides`` applied to its config: the one way every command and class opens one."""
    checkpoint = load_checkpoint(path)
    task = checkpoint_task(path, checkpoint, expected)
    return task, task.restore(checkpoint, str(path), overrides, device)
