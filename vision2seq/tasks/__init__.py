"""The tasks, by the name a config's ``task`` key and a checkpoint's ``task`` entry use.

Every task module exposes the same names, which ``train``, ``evaluate``, the checkpoint checks and the
inference classes use without branching on the task:

- ``NAME``, ``COMMAND`` (the command that uses its checkpoints), ``EXTRAS`` (the ``extras`` entry its
  checkpoints need: the vocabulary, the class names) and ``check_extras(value)`` (what is wrong with
  that entry, or None);
- a task class with ``training_step``, ``predict_step``, ``make_evaluator``, ``parameter_groups``,
  ``checkpoint_extras`` and ``monitor`` (see ``engine.Task``), and optionally ``training_module(model)``,
  the module the loop trains and DistributedDataParallel wraps when it is more than the model
  (captioning's SCST: the model and its loss);
- ``build(config, device, dist, init) -> Built``: task, model and loaders of a training run (``init``:
  the encoder weights of ``train.init_from``, loaded before any feature is cached);
- ``eval_loader(config, model, split, device)``: the loader ``evaluate`` scores;
- ``restore(checkpoint, source, overrides, device) -> Restored``: task and model of a checkpoint.

Adding a task: one module here, one model file under ``models/``, one config schema in ``config.py``
and one entry below.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from vision2seq.checkpoint import CheckpointError, load_checkpoint
from vision2seq.tasks import captioning, video_captioning, video_classification
from vision2seq.tasks.common import Restored

TASKS: dict[str, ModuleType] = {
    "captioning": captioning,
    "video_classification": video_classification,
    "video_captioning": video_captioning,
}


def checkpoint_task(
    path: str | Path, checkpoint: dict[str, Any], expected: str | tuple[str, ...] | None = None
) -> ModuleType:
    """The task module of a loaded checkpoint, after checking it holds what that task reads.

    Args:
        path: Where the checkpoint came from (for messages).
        checkpoint: The loaded payload (``checkpoint.load_checkpoint``).
        expected: The task (or tasks) the caller can use (``caption`` needs a captioner); None: any.

    Raises:
        CheckpointError: an unknown task, another task than ``expected``, or a missing/malformed ``config``,
            ``model`` or ``extras`` entry.
    """
    found = checkpoint.get("task")
    module = TASKS.get(found) if isinstance(found, str) else None
    accepted = (expected,) if isinstance(expected, str) else expected
    if accepted is not None and found not in accepted:
        hint = f" (use `{module.COMMAND}` with it)" if module is not None else ""
        needed = " or ".join(repr(name) for name in accepted)
        raise CheckpointError(
            f"{path}: this is a {found!r} checkpoint, but a {needed} checkpoint is needed{hint}"
        )
    if module is None:
        known = ", ".join(sorted(TASKS))
        raise CheckpointError(f"{path}: unknown checkpoint task {found!r} (expected one of {known})")
    extras = checkpoint.get("extras")
    problems = [key for key in ("config", "model") if not isinstance(checkpoint.get(key), dict)]
    if not (isinstance(extras, dict) and isinstance(extras.get(module.EXTRAS), list)):
        problems.append(f"extras.{module.EXTRAS}")
    if problems:
        raise CheckpointError(
            f"{path}: damaged {found!r} checkpoint: missing or malformed {', '.join(problems)}"
        )
    problem = module.check_extras(extras[module.EXTRAS])
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    return module


def restore_checkpoint(
    path: str | Path,
    expected: str | tuple[str, ...] | None = None,
    overrides: Sequence[str] = (),
    device: str = "auto",
) -> tuple[ModuleType, Restored]:
    """Load the checkpoint at ``path`` safely, check it (``checkpoint_task``) and restore its task and
    model with ``overrides`` applied to its config: the one way every command and class opens one."""
    checkpoint = load_checkpoint(path)
    module = checkpoint_task(path, checkpoint, expected)
    return module, module.restore(checkpoint, str(path), overrides, device)
