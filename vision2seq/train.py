"""``vision2seq train``: build the task a config names and hand it to the shared loop.

Runs in one process, or in each process of a ``torchrun`` job (DistributedDataParallel; see
``vision2seq.engine.distributed``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from torch import nn

from vision2seq.config import ExperimentConfig
from vision2seq.engine import distributed
from vision2seq.engine.checkpoint import load_checkpoint
from vision2seq.engine.loop import FitResult, fit, seed_everything
from vision2seq.engine.run_dir import claim_output_dir
from vision2seq.errors import UserError
from vision2seq.resources import threads_for_run, worker_count
from vision2seq.tasks import TASKS
from vision2seq.tasks.base import encoder_state


def init_weights(model: nn.Module, task: Any, path: str | Path, checkpoint: dict | None = None) -> None:
    """Load the weights (feature statistics included) of checkpoint ``path`` into ``model`` of ``task``
    (``train.init_from``; ignored when resuming, since ``last.pt`` then holds the weights).

    Raises:
        UserError: the file is another task's, its vocabulary or class names differ from the run's, or
            its weights do not fit the configured model.
    """
    checkpoint = checkpoint if checkpoint is not None else load_checkpoint(path)
    key = "train.init_from"
    if checkpoint.get("task") != task.name:
        raise UserError(
            f"{key}: {path} is a {checkpoint.get('task')!r} checkpoint, this run is {task.name!r}"
        )
    mine, theirs = task.checkpoint_extras(), checkpoint.get("extras") or {}
    for name, value in mine.items():
        if theirs.get(name) != value:
            raise UserError(
                f"{key}: {path} has another {name} than this run's training data builds "
                f"({len(theirs.get(name) or [])} vs {len(value)} entries); use the same data and "
                "data.min_word_freq as the run it came from"
            )
    try:
        model.load_state_dict(checkpoint["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise UserError(
            f"{key}: the weights in {path} do not fit this config's model ({reason}); "
            "use the same model.* settings as the run it came from"
        ) from None


def train(config: ExperimentConfig, resume: bool = False, progress: bool = True) -> FitResult:
    """Train the experiment ``config`` describes; writes best.pt/last.pt/metrics.csv to its output_dir."""
    threads_for_run(config.train.threads, worker_count(config.train.num_workers))  # as the CLI chooses
    resume = resume or config.train.resume
    check_data_paths(config)  # before the process group, any download or any folder is made
    dist, device = distributed.setup(config.train.device)
    try:
        # Claimed before the data is set up, so a locked or unwritable output_dir is refused before a
        # feature cache is built; fit's own claim of the same folder is then a no-op.
        reads = [("train.init_from", config.train.init_from)] if config.train.init_from and not resume else []
        with claim_output_dir(config.output_dir, resume, config.train.overwrite, dist.is_main, reads):
            source, init = None, None
            if config.train.init_from and not resume:
                source = load_checkpoint(config.train.init_from)
                if source.get("task") != config.task:
                    raise UserError(
                        f"train.init_from: {config.train.init_from} is a {source.get('task')!r} checkpoint, "
                        f"this run is {config.task!r}"
                    )
                init = encoder_state(source["model"])
            seed_everything(config.seed)
            # The encoder gets init_from's weights before the feature cache and statistics are made from it.
            built = TASKS[config.task].build(config, device, dist, init=init)
            if progress and dist.is_main:
                describe_encoder(config)
            if source is not None:
                init_weights(built.model, built.task, config.train.init_from, source)
            # Every rank starts from the same weights (built above from the seed); dropout differs per rank.
            seed_everything(config.seed + 1 + dist.rank)
            return fit(
                built.task,
                built.model,
                built.train,
                built.val,
                config,
                resume=resume,
                progress=progress,
                dist=dist,
                device=device,
            )
    finally:
        distributed.teardown()


DATA_PATH_KEYS = (
    "annotations",
    "images",
    "videos",
    "val_annotations",
    "val_images",
    "test_annotations",
    "mapping",
)
"""The ``data.*`` keys that name files or folders the run reads."""


def check_data_paths(config: ExperimentConfig) -> None:
    """Refuse a ``data.*`` path that does not exist, before anything is downloaded, built or written.

    Raises:
        UserError: ``data.<key>: <path> does not exist`` for the first missing one.
    """
    for key in DATA_PATH_KEYS:
        value = getattr(config.data, key, None)
        if isinstance(value, str) and value and not Path(value).exists():
            raise UserError(
                f"data.{key}: {value} does not exist (check the path, or override it: data.{key}=...)"
            )


def describe_encoder(config: ExperimentConfig) -> None:
    """Say when the CNN trains (and so runs on every batch, with no feature cache), and from what."""
    enc = config.model.encoder
    stages = enc.trainable()
    if stages is None:
        if config.train.objective == "scst" and enc.weights is None:
            print(
                f"encoder: {enc.name} frozen for SCST, with the weights of train.init_from (features "
                "cached once); model.encoder.trainable_from=all trains it",
                file=sys.stderr,
            )
        return
    start = "random init" if enc.weights is None else f"weights {enc.weights}"
    lr = enc.learning_rate(config.train.lr)
    print(
        f"encoder: {enc.name} trained from {start} (stages from {stages}, lr {lr:g}); "
        "images are decoded and encoded every epoch, no feature cache",
        file=sys.stderr,
    )
