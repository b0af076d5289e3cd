"""The one training loop, shared by every task: ``fit()`` and ``evaluate()``.

A task (see ``tasks/``) supplies ``training_step(model, batch) -> {"loss": ...}``, ``predict_step(model,
batch)``, an evaluator and its monitored metric; this loop never branches on the task. It handles the
optimiser and schedule, AMP on CUDA, gradient clipping, validation, best/last checkpoints, resuming
with RNG state, early stopping, progress bars and a metrics CSV (plus TensorBoard when installed).
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vision2seq.config import ExperimentConfig, TrainConfig, config_to_dict
from vision2seq.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from vision2seq.engine.distributed import SINGLE, DistContext, resolve_device
from vision2seq.engine.optim import build_optimizer, build_scheduler, describe_schedule, warmup_steps
from vision2seq.engine.run_dir import claim_output_dir
from vision2seq.engine.run_log import log_epoch, tensorboard_writer
from vision2seq.errors import UserError, report


class Evaluator(Protocol):
    def update(self, predictions: Any, batch: Mapping[str, Any]) -> None: ...
    def compute(self) -> dict[str, float]: ...


class Task(Protocol):
    """What a task gives the loop."""

    name: str
    monitor: str
    """Default metric selecting the best checkpoint (higher is better)."""

    def training_step(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]: ...
    def predict_step(self, model: nn.Module, batch: Mapping[str, Any]) -> Any: ...
    def make_evaluator(self) -> Evaluator: ...
    def parameter_groups(self, model: nn.Module) -> list[dict[str, Any]]: ...
    def checkpoint_extras(self) -> dict[str, Any]: ...

    inputs: tuple[str, ...]
    """Batch entries only the model reads (images, frames, features); left out when predictions are
    gathered across ranks for the evaluator."""


class TrainingError(UserError):
    """Training cannot continue (e.g. the loss became NaN)."""


@dataclass
class FitResult:
    monitor: str
    best_metric: float | None
    best_epoch: int | None
    epochs_run: int
    last_metrics: dict[str, float]
    output_dir: Path


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def move_to(batch: Any, device: torch.device) -> Any:
    """Tensors (also inside dicts/lists) moved to ``device``; everything else unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def autocast(device: torch.device, amp: str):
    """bf16/fp16 autocast on CUDA; a no-op elsewhere (CPU runs stay fp32 and deterministic)."""
    if device.type != "cuda" or amp == "none":
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


@dataclass
class _Run:
    """The mutable state of a run, as saved in checkpoints."""

    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    epoch_loss: float = 0.0
    """Sum of the training losses of this epoch so far, and how many batches it holds: a run resumed
    mid-epoch reports the same mean training loss as one never interrupted."""
    epoch_batches: int = 0


@dataclass
class _Trainer:
    """What one optimisation step needs, built once per ``fit``."""

    task: Task
    model: nn.Module
    trained: nn.Module  # ``model``, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    cfg: TrainConfig
    device: torch.device

    def step(self, batch: Mapping[str, Any], run: _Run) -> dict[str, float] | None:
        """One optimiser step on ``batch``; returns the values of the task's loss dict (``loss`` and what
        else the task reports, e.g. SCST's reward), or None when a non-finite loss was skipped."""
        with autocast(self.device, self.cfg.amp):
            losses = self.task.training_step(self.trained, batch)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            if not self.cfg.skip_nonfinite:
                raise TrainingError(
                    f"loss became {loss.item()} at step {run.step + 1} (epoch {run.epoch + 1}); "
                    "lower train.lr, enable train.grad_clip, or set train.skip_nonfinite=true"
                )
            print(f"skipping batch at step {run.step + 1}: loss is {loss.item()}", file=sys.stderr)
            return None
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if not isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step()
        run.step += 1
        return {k: v.item() for k, v in losses.items()}

    def state(self, config: ExperimentConfig, run: _Run, metrics: dict[str, float], rng: list) -> dict:
        """The checkpoint payload: weights, config, task extras, and everything resuming needs."""
        return {
            "task": self.task.name,
            "config": config_to_dict(config),
            "extras": self.task.checkpoint_extras(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "metrics": metrics,
            **vars(run),
        }


def save_run(
    out: Path, names: list[str], trainer: _Trainer, config: ExperimentConfig, run: _Run, metrics: dict, dist
) -> dict[str, Any] | None:
    """Write the run's state to ``out/<name>`` for each name (main process only; every rank's RNG state
    is gathered so a resumed DDP run draws the same numbers). Returns the payload on the main process."""
    rng = dist.all_gather_object(rng_state())
    payload = None
    if dist.is_main:
        payload = trainer.state(config, run, metrics, rng)
        for name in names:
            save_checkpoint(out / name, payload)
    dist.barrier()
    return payload


def fit(
    task: Task,
    model: nn.Module,
    train_loader: Any,
    val_loader: Iterable,
    config: ExperimentConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    dist: DistContext = SINGLE,
    device: torch.device | None = None,
) -> FitResult:
    """Train ``model`` on ``task``; the main process writes best.pt / last.pt / metrics.csv to output_dir.

    Under torchrun (``dist.enabled``) the model is wrapped in DistributedDataParallel, each rank trains on
    its shard of every global batch, validation predictions are gathered to compute the metrics once,
    and only rank 0 writes files and shows progress. ``output_dir`` is locked for the whole run and
    another run's files in it are refused (see ``run_dir.claim_output_dir``).
    """
    resume = resume or config.train.resume
    claim = claim_output_dir(config.output_dir, resume, config.train.overwrite, lock=dist.is_main)
    with claim:
        return _fit(task, model, train_loader, val_loader, config, resume, progress, dist, device)


def _fit(
    task: Task,
    model: nn.Module,
    train_loader: Any,
    val_loader: Iterable,
    config: ExperimentConfig,
    resume: bool,
    progress: bool,
    dist: DistContext,
    device: torch.device | None,
) -> FitResult:
    cfg: TrainConfig = config.train
    out = Path(config.output_dir)
    device = device or resolve_device(cfg.device)
    model.to(device)
    optimizer = build_optimizer(task.parameter_groups(model), cfg)
    steps_per_epoch = max(1, len(train_loader))
    # The run ends at whichever comes first; the schedule must end there too (not at an unreached max_steps).
    total_steps = min(cfg.max_steps or math.inf, cfg.epochs * steps_per_epoch)
    scheduler = build_scheduler(optimizer, cfg, total_steps, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.amp == "fp16")
    # A task may train the model inside a bigger module (SCST: model and loss in one), wrapped whole by DDP.
    trained = task.training_module(model) if hasattr(task, "training_module") else model
    trainer = _Trainer(
        task, model, _wrap_ddp(trained, device, dist), optimizer, scheduler, scaler, cfg, device
    )
    monitor = cfg.monitor or task.monitor
    run = _resume(trainer, out, dist, config, steps_per_epoch) if resume else _Run()
    dist.barrier()  # nobody writes into output_dir before everybody has read last.pt
    writer = tensorboard_writer(out) if dist.is_main else None
    show = progress and dist.is_main
    warning = warmup_steps(cfg, total_steps)[1]
    if warning and dist.is_main:
        print(f"warning: {warning}", file=sys.stderr)
    if show:
        at = f" (resuming at step {run.step}, epoch {run.epoch + 1})" if run.step else ""
        print(describe_schedule(cfg, total_steps, steps_per_epoch) + at, file=sys.stderr)

    metrics: dict[str, float] = {}
    last_payload = None
    for epoch in range(run.epoch, cfg.epochs):
        if run.step >= total_steps:
            break
        start = time.perf_counter()
        train_loss = _train_epoch(trainer, train_loader, run, epoch, total_steps, show, out, config, dist)
        metrics = {"train_loss": dist.mean(train_loss)}
        run.epoch, run.batch_in_epoch, run.epoch_loss, run.epoch_batches = epoch + 1, 0, 0.0, 0
        improved = False
        if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
            scores = evaluate(task, model, val_loader, device, cfg.amp, progress=show, dist=dist)
            metrics.update({k: v for k, v in scores.items() if isinstance(v, float)})  # no per-class lists
            improved = _update_best(run, metrics, monitor, scheduler, model)
        if dist.is_main:
            row = {
                "epoch": epoch + 1,
                "step": run.step,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": round(time.perf_counter() - start, 3),
                **metrics,
            }
            shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            print(
                f"epoch {epoch + 1}/{cfg.epochs}: {shown}", file=sys.stderr
            )  # shown even if the disk is full
            log_epoch(out, row, writer)
        names = ["best.pt", "last.pt"] if improved else ["last.pt"]
        last_payload = save_run(out, names, trainer, config, run, metrics, dist)
        last = epoch + 1 == cfg.epochs or run.step >= total_steps
        if cfg.early_stopping_patience and run.bad_epochs >= cfg.early_stopping_patience and not last:
            if dist.is_main:
                print(
                    f"early stopping: {monitor} did not improve for {run.bad_epochs} epochs", file=sys.stderr
                )
            break
    if writer is not None:
        writer.close()
    if last_payload is not None and not (out / "best.pt").exists():
        # No finite validation score yet (e.g. max_steps hit early): best is the last.
        save_checkpoint(out / "best.pt", last_payload)
    dist.barrier()
    return FitResult(monitor, run.best_metric, run.best_epoch, run.epoch, metrics, out)


def _resume(
    trainer: _Trainer, out: Path, dist: DistContext, config: ExperimentConfig, steps_per_epoch: int
) -> _Run:
    """Load ``out/last.pt`` into the trainer; returns the run state it was saved with.

    Raises:
        UserError: no last checkpoint, another task's, or settings that would change the learning-rate
            schedule of the steps already taken (see ``check_schedule_unchanged``).
    """
    path = out / "last.pt"
    if not path.is_file():
        raise UserError(f"{path}: nothing to resume (no last checkpoint in output_dir)")
    ckpt = load_checkpoint(path)
    if ckpt.get("task") != trainer.task.name:
        raise UserError(f"{path}: a {ckpt.get('task')!r} run, not {trainer.task.name!r}; cannot resume it")
    check_schedule_unchanged(path, ckpt.get("config"), config, steps_per_epoch)
    trainer.model.load_state_dict(ckpt["model"])
    trainer.optimizer.load_state_dict(ckpt["optimizer"])
    trainer.scheduler.load_state_dict(ckpt["scheduler"])
    trainer.scaler.load_state_dict(ckpt["scaler"])
    defaults = vars(_Run())
    run = _Run(**{k: ckpt.get(k, default) for k, default in defaults.items()})  # older files lack some
    set_rng_state(ckpt["rng"][dist.rank] if dist.world_size == len(ckpt["rng"]) else ckpt["rng"][0])
    return run


SCHEDULE_KEYS = ("lr", "scheduler", "warmup_steps", "warmup_fraction", "lr_step_epochs", "lr_gamma")


def check_schedule_unchanged(path: Path, saved: Any, config: ExperimentConfig, steps_per_epoch: int) -> None:
    """Refuse to resume with settings under which the learning rate of a step differs from the run's.

    Resuming continues the saved schedule; ``train.epochs`` or ``train.max_steps`` may grow (or shrink)
    only when the schedule does not depend on the run's length (``none``, ``step`` and ``plateau``,
    without ``warmup_fraction`` or a clamped warm-up). A cosine schedule ends at the run's last step, so
    a longer run would jump the learning rate back up: that is refused with the ways out.
    """
    from vision2seq.config import config_from_dict

    try:
        old = config_from_dict(saved).train if isinstance(saved, dict) else None
    except UserError:
        old = None  # a config this version cannot read: nothing to compare
    if old is None:
        return
    new = config.train
    changed = [k for k in SCHEDULE_KEYS if getattr(old, k) != getattr(new, k)]
    old_total = min(old.max_steps or math.inf, old.epochs * steps_per_epoch)
    new_total = min(new.max_steps or math.inf, new.epochs * steps_per_epoch)
    if not changed and old_total != new_total:
        depends = (
            new.scheduler == "cosine" or warmup_steps(old, old_total)[0] != warmup_steps(new, new_total)[0]
        )
        if not depends:
            return  # the same learning rate at every step: the run is simply longer or shorter
        changed = [k for k in ("epochs", "max_steps") if getattr(old, k) != getattr(new, k)]
    if not changed:
        return
    was = ", ".join(f"train.{k}={getattr(old, k)}" for k in changed)
    raise UserError(
        f"{path}: cannot resume with {', '.join(f'train.{k}={getattr(new, k)}' for k in changed)}: the run "
        f"was started with {was}, and its learning-rate schedule "
        f"({describe_schedule(old, int(old_total), steps_per_epoch).removeprefix('schedule: ')}) would "
        "change under the steps already taken; resume with the run's settings, or start a new run from its "
        f"weights (train.init_from={path} and another output_dir)"
    )


def _train_epoch(
    trainer: _Trainer,
    loader: Any,
    run: _Run,
    epoch: int,
    total_steps: int,
    show: bool,
    out: Path,
    config: ExperimentConfig,
    dist: DistContext,
) -> float:
    """One epoch (or its rest, when resuming mid-epoch); returns the mean training loss."""
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    if run.batch_in_epoch >= len(loader):
        # Saved after the epoch's last batch, before its validation (a mid-epoch checkpoint that fell on
        # the last, possibly partial, batch): nothing of the epoch is left to train.
        return run.epoch_loss / max(1, run.epoch_batches)
    if run.batch_in_epoch and hasattr(sampler, "set_start"):
        sampler.set_start(run.batch_in_epoch * loader.batch_size)
    trainer.trained.train()
    every, minutes = trainer.cfg.checkpoint_every, trainer.cfg.checkpoint_minutes
    start, seen, sums, n_batches = time.perf_counter(), 0, {"loss": 0.0}, 0
    saved_at = time.monotonic()
    bar = tqdm(
        loader,
        desc=f"epoch {epoch + 1}/{trainer.cfg.epochs}",
        unit="batch",
        leave=False,
        disable=None if show else True,
        file=sys.stderr,
    )
    for batch in bar:
        run.batch_in_epoch += 1
        if not _report_skipped(batch):  # nothing in the batch could be read
            continue
        values = trainer.step(move_to(batch, trainer.device), run)
        if values is None:
            continue
        n_batches += 1
        run.epoch_loss += values["loss"]
        run.epoch_batches += 1
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + value
        seen += _batch_size(batch)
        # Running means of everything the task reports (loss; reward and baseline under SCST).
        shown = {k: f"{v / n_batches:.3f}" for k, v in sums.items()}
        bar.set_postfix(**shown, items_s=f"{seen / (time.perf_counter() - start):.1f}")
        due = bool(every and run.step % every == 0)
        # Rank 0's clock decides for every rank (saving is a collective); in a distributed run it is
        # asked every 16 steps only, so the loop does not wait for a broadcast at each step.
        if minutes and (not dist.enabled or run.step % 16 == 0):
            due = dist.broadcast_object(due or time.monotonic() - saved_at >= 60 * minutes)
        if due:
            mean = run.epoch_loss / run.epoch_batches
            save_run(out, ["last.pt"], trainer, config, run, {"train_loss": mean}, dist)
            saved_at = time.monotonic()
        if run.step >= total_steps:
            break
    bar.close()
    return run.epoch_loss / max(1, run.epoch_batches)


def _update_best(
    run: _Run, metrics: dict[str, float], monitor: str, scheduler: Any, model: nn.Module
) -> bool:
    """Record the monitored metric; True when this epoch is the best so far (and its weights are finite)."""
    if monitor not in metrics:
        raise UserError(f"train.monitor: metric {monitor!r} not produced (have: {', '.join(metrics)})")
    value = metrics[monitor]
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(value)
    finite = math.isfinite(value) and all(torch.isfinite(p).all() for p in model.parameters())
    # Ties go to the later (longer-trained) epoch; a model with NaN weights is never the best.
    improved = finite and (run.best_metric is None or value >= run.best_metric)
    if improved:
        run.best_metric, run.best_epoch, run.bad_epochs = value, run.epoch, 0
    else:
        run.bad_epochs += 1
    return improved


def _wrap_ddp(model: nn.Module, device: torch.device, dist: DistContext) -> nn.Module:
    if not dist.enabled or not any(p.requires_grad for p in model.parameters()):
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


@torch.no_grad()
def evaluate(
    task: Task,
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str = "cpu",
    amp: str = "none",
    progress: bool = True,
    dist: DistContext = SINGLE,
) -> dict[str, Any]:
    """Run ``task.predict_step`` over ``loader`` and return the evaluator's metrics.

    With several ranks each evaluates its shard of ``loader``; the predictions, with the batch's
    non-input fields (labels, keys, references), are gathered so that the metrics are computed once over
    the whole set, then shared with every rank.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    collected = []
    evaluator = task.make_evaluator()
    for batch in tqdm(
        loader,
        desc="evaluating",
        unit="batch",
        leave=False,
        disable=None if progress else True,
        file=sys.stderr,
    ):
        if not _report_skipped(batch):
            continue
        batch = move_to(batch, device)
        with autocast(device, amp):
            predictions = task.predict_step(model, batch)
        if dist.enabled:
            labels = {k: v for k, v in batch.items() if k not in task.inputs}
            collected.append(move_to((predictions, labels), torch.device("cpu")))
        else:
            evaluator.update(predictions, batch)
    model.train(was_training)
    if not dist.enabled:
        return evaluator.compute()
    gathered = dist.all_gather_object(collected)
    metrics = None
    if dist.is_main:
        for part in gathered:
            for predictions, batch in part:
                evaluator.update(predictions, batch)
        metrics = evaluator.compute()
    return dist.broadcast_object(metrics)


def _report_skipped(batch: Any) -> bool:
    """Report the batch's unreadable items (``errors``) and say whether anything is left to use."""
    if batch is None:
        return False
    if isinstance(batch, dict):
        for message in batch.pop("errors", ()):
            report(message)
        return bool(batch)
    return True


def _batch_size(batch: Any) -> int:
    if isinstance(batch, Mapping):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                return value.shape[0]
    return 1
