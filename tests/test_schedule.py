"""Learning-rate schedules that fit the run: warm-up scales with (or is clamped to) the run's length, cosine
reaches zero at its last step, and the effective schedule is printed when training starts."""

from __future__ import annotations

import pytest
import tiny_models
import torch

from vision2seq.config import TrainConfig
from vision2seq.engine.optim import build_scheduler, describe_schedule, warmup_steps

tiny_captioner = tiny_models.tiny_captioner
torch_one_thread = tiny_models.torch_one_thread


def lrs(cfg: TrainConfig, total: int, steps_per_epoch: int = 10) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = build_scheduler(optimizer, cfg, total, steps_per_epoch)
    values = []
    for _ in range(total):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def test_long_fixed_warmup_is_clamped_in_a_short_run() -> None:
    # The case: 60 steps in all with warmup_steps 200 never got above 8e-5 of 1e-3.
    cfg = TrainConfig(lr=1e-3, scheduler="cosine", warmup_steps=200)
    warm, warning = warmup_steps(cfg, 60)
    assert warm == 6 and "train.warmup_steps=200" in warning and "warmup_fraction" in warning
    values = lrs(cfg, 60)
    assert max(values) == pytest.approx(1e-3, rel=0.01)
    assert values.index(max(values)) == 5  # full rate right after the warm-up
    assert values[-1] < 0.01 * 1e-3  # cosine ends near zero at the last step


def test_warmup_fraction_scales_with_the_run() -> None:
    cfg = TrainConfig(lr=1e-3, scheduler="cosine", warmup_fraction=0.05)
    assert warmup_steps(cfg, 60) == (3, None)
    assert warmup_steps(cfg, 600_000) == (30_000, None)
    values = lrs(cfg, 60)
    assert values[0] == pytest.approx(1e-3 / 3) and values[2] == pytest.approx(1e-3)
    assert values[-1] < 0.01 * 1e-3


def test_short_fixed_warmup_is_kept_and_step_decay_counts_epochs() -> None:
    cfg = TrainConfig(lr=1.0, scheduler="step", warmup_steps=2, lr_step_epochs=1, lr_gamma=0.5)
    assert warmup_steps(cfg, 100) == (2, None)
    values = lrs(cfg, 30, steps_per_epoch=10)
    assert values[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert values[10] == pytest.approx(0.5) and values[20] == pytest.approx(0.25)


def test_schedule_line() -> None:
    cfg = TrainConfig(lr=4e-4, scheduler="cosine", warmup_fraction=0.1)
    line = describe_schedule(cfg, 600, 100)
    assert (
        line == "schedule: lr 0.0004, warm-up 60 steps, decay cosine to 0 over steps 60-600, 600 total steps"
    )
    assert "constant" in describe_schedule(TrainConfig(scheduler="none"), 10, 5)


def test_train_prints_the_effective_schedule(tiny_captioner, tmp_path, capsys) -> None:
    code, _, err = tiny_models.run_cli(
        capsys, "train", tiny_captioner.config, f"output_dir={tmp_path / 'run'}", "train.warmup_steps=50"
    )
    assert code == 0
    lines = err.splitlines()
    assert any(line.startswith("warning: train.warmup_steps=50 is more than 10%") for line in lines), err
    assert any(line.startswith("schedule: lr 0.01, warm-up 0 steps") for line in lines), err


def test_schedule_ends_with_the_epochs_when_max_steps_is_not_reached(
    tiny_captioner, tmp_path, capsys
) -> None:
    # 24 captions, batch 8: three steps an epoch; three epochs end the run long before max_steps=1000, so
    # the warm-up and decay must be fitted to its 9 steps, not to 1000 it never reaches.
    code, _, err = tiny_models.run_cli(
        capsys,
        "train",
        tiny_captioner.config,
        f"output_dir={tmp_path / 'run'}",
        "train.epochs=3",
        "train.max_steps=1000",
        "train.scheduler=cosine",
        "train.warmup_fraction=0.5",
    )
    assert code == 0, err
    schedule = [line for line in err.splitlines() if line.startswith("schedule:")]
    assert schedule and schedule[0].endswith(" 9 total steps"), err
