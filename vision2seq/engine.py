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

from vision2seq.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from vision2seq.config import ExperimentConfig, TrainConfig, config_to_dict
from vision2seq.distributed import SINGLE, DistContext, resolve_device
from vision2seq.errors import UserError, report
from vision2seq.optim import build_optimizer, build_scheduler
from vision2seq.run_dir import claim_output_dir
from vision2seq.run_log import log_epoch, tensorboard_writer


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
    trained = _wrap_ddp(model, device, dist)
    optimizer = build_optimizer(task.parameter_groups(model), cfg)
    steps_per_epoch = max(1, len(train_loader))
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    scheduler = build_scheduler(optimizer, cfg, total_steps, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.amp == "fp16")
    monitor = cfg.monitor or task.monitor
    run = _Run()
    if resume:
        ckpt = load_checkpoint(out / "last.pt", task=task.name) if (out / "last.pt").is_file() else None
        if ckpt is None:
            raise UserError(f"{out / 'last.pt'}: nothing to resume (no last checkpoint in output_dir)")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        run = _Run(**{k: ckpt[k] for k in vars(run)})
        set_rng_state(ckpt["rng"][dist.rank] if dist.world_size == len(ckpt["rng"]) else ckpt["rng"][0])
    dist.barrier()  # nobody writes into output_dir before everybody has read last.pt
    writer = tensorboard_writer(out) if dist.is_main else None
    show = progress and dist.is_main

    def save(names: list[str], metrics: dict[str, float]) -> None:
        rng = dist.all_gather_object(rng_state())
        if dist.is_main:
            payload = {
                "task": task.name,
                "config": config_to_dict(config),
                "extras": task.checkpoint_extras(),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": rng,
                "metrics": metrics,
                **vars(run),
            }
            for name in names:
                save_checkpoint(out / name, payload)
        dist.barrier()

    metrics: dict[str, float] = {}
    for epoch in range(run.epoch, cfg.epochs):
        if run.step >= total_steps:
            break
        start = time.perf_counter()
        train_loss = _train_epoch(
            task,
            trained,
            model,
            train_loader,
            optimizer,
            scheduler,
            scaler,
            run,
            epoch,
            total_steps,
            cfg,
            device,
            show,
            save,
        )
        metrics = {"train_loss": dist.mean(train_loss)}
        run.epoch, run.batch_in_epoch = epoch + 1, 0
        validate = (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs
        improved = False
        if validate:
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
            log_epoch(out, row, writer)
            shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            print(f"epoch {epoch + 1}/{cfg.epochs}: {shown}", file=sys.stderr)
        save(["best.pt", "last.pt"] if improved else ["last.pt"], metrics)
        if cfg.early_stopping_patience and run.bad_epochs >= cfg.early_stopping_patience:
            if dist.is_main:
                print(
                    f"early stopping: {monitor} did not improve for {run.bad_epochs} epochs", file=sys.stderr
                )
            break
    if writer is not None:
        writer.close()
    if dist.is_main and not (out / "best.pt").exists() and (out / "last.pt").exists():
        # No finite validation score yet (e.g. max_steps hit early): best is the last.
        save_checkpoint(out / "best.pt", load_checkpoint(out / "last.pt"))
    dist.barrier()
    return FitResult(monitor, run.best_metric, run.best_epoch, run.epoch, metrics, out)


def _train_epoch(
    task: Task,
    trained: nn.Module,
    model: nn.Module,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    run: _Run,
    epoch: int,
    total_steps: int,
    cfg: TrainConfig,
    device: torch.device,
    show: bool,
    save: Any,
) -> float:
    """One epoch (or its rest, when resuming mid-epoch); returns the mean training loss."""
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    if run.batch_in_epoch and hasattr(sampler, "set_start"):
        sampler.set_start(run.batch_in_epoch * loader.batch_size)
    trained.train()
    start, seen, loss_sum, n_batches = time.perf_counter(), 0, 0.0, 0
    bar = tqdm(
        loader,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        unit="batch",
        leave=False,
        disable=None if show else True,
        file=sys.stderr,
    )
    for batch in bar:
        run.batch_in_epoch += 1
        if not _report_skipped(batch):  # nothing in the batch could be read
            continue
        batch = move_to(batch, device)
        with autocast(device, cfg.amp):
            loss = task.training_step(trained, batch)["loss"]
        if not torch.isfinite(loss):
            if not cfg.skip_nonfinite:
                raise TrainingError(
                    f"loss became {loss.item()} at step {run.step + 1} (epoch {epoch + 1}); "
                    "lower train.lr, enable train.grad_clip, or set train.skip_nonfinite=true"
                )
            print(f"skipping batch at step {run.step + 1}: loss is {loss.item()}", file=sys.stderr)
            continue
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step()
        run.step += 1
        n_batches += 1
        loss_sum += loss.item()
        seen += _batch_size(batch)
        bar.set_postfix(
            loss=f"{loss_sum / n_batches:.3f}", items_s=f"{seen / (time.perf_counter() - start):.1f}"
        )
        if cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0:
            save(["last.pt"], {"train_loss": loss_sum / n_batches})
        if run.step >= total_steps:
            break
    bar.close()
    return loss_sum / max(1, n_batches)


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
            collected.append(move_to((predictions, _without_inputs(batch)), torch.device("cpu")))
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


def _without_inputs(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch minus its model inputs (images, frames, features), which evaluators never need."""
    return {k: v for k, v in batch.items() if k not in ("images", "frames", "features")}


def _batch_size(batch: Any) -> int:
    if isinstance(batch, Mapping):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                return value.shape[0]
    return 1
