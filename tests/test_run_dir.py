"""An output_dir belongs to one run: concurrent runs, another run's files, unwritable folders and a full
disk are one-line errors (exit 1) that leave the earlier run's files byte for byte as they were."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tiny_models
import torch
from tiny_models import ROOT, TinyRun, assert_one_error, error_lines, run_cli

from vision2seq.engine import checkpoint, run_dir
from vision2seq.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vision2seq.engine.run_dir import LOCK_NAME, OutputDirError, claim_output_dir

tiny_captioner = tiny_models.tiny_captioner
torch_one_thread = tiny_models.torch_one_thread


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != LOCK_NAME}


def _earlier_run(tiny: TinyRun, folder: Path, files: tuple[str, ...] = ("best.pt", "metrics.csv")) -> Path:
    """A folder holding ``files`` of the tiny captioner's finished run."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).write_bytes((tiny.checkpoint.parent / name).read_bytes())
    return folder


def _claim(path: Path, **kwargs: bool) -> None:
    with claim_output_dir(path, **kwargs):
        pass


def _hold_lock(folder: Path) -> subprocess.Popen[str]:
    """Another process that claims ``folder`` (as a running ``train`` does) and keeps it."""
    script = textwrap.dedent(f"""
        import time
        from vision2seq.engine.run_dir import claim_output_dir
        with claim_output_dir({str(folder)!r}, resume=True):
            print("claimed", flush=True)
            time.sleep(120)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "claimed"
    return proc


def test_a_second_train_on_a_locked_output_dir_is_refused(tiny_captioner, tmp_path, capsys) -> None:
    out = _earlier_run(tiny_captioner, tmp_path / "run", ("best.pt", "last.pt", "metrics.csv"))
    before = _snapshot(out)
    holder = _hold_lock(out)
    try:
        with pytest.raises(OutputDirError, match=rf"process {holder.pid}\)"):
            _claim(out, resume=True)
        code, stdout, err = run_cli(capsys, "train", tiny_captioner.config, f"output_dir={out}", "--resume")
        assert code == 1 and stdout == ""
        assert_one_error(err, "train", f"{out}: output_dir is in use by another running `vision2seq train`")
        assert _snapshot(out) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_run_leaves_no_stale_lock(tmp_path) -> None:
    out = tmp_path / "run"
    holder = _hold_lock(out)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (out / LOCK_NAME).exists()  # the file stays, but nobody holds its lock
    _claim(out)  # free again; and a lock file alone is no run


@pytest.mark.parametrize("files", [("best.pt", "metrics.csv"), ("last.pt",), ("metrics.csv",)])
def test_another_runs_files_are_not_trained_into(files, tiny_captioner, tmp_path, capsys) -> None:
    out = _earlier_run(tiny_captioner, tmp_path / "run", files)
    before = _snapshot(out)
    code, stdout, err = run_cli(capsys, "train", tiny_captioner.config, f"output_dir={out}", "--quiet")
    assert code == 1 and stdout == ""
    assert_one_error(err, "train", f"{out}: holds another run ({', '.join(files)})", "--resume")
    assert _snapshot(out) == before


def test_overwrite_replaces_the_earlier_run(tiny_captioner, tmp_path, capsys) -> None:
    out = _earlier_run(tiny_captioner, tmp_path / "run", ("best.pt", "metrics.csv"))
    (out / "metrics.csv").write_text("epoch,old_metric\n1,0.5\n2,0.6\n")
    (out / "notes.txt").write_text("mine")
    code, _, _ = run_cli(
        capsys, "train", tiny_captioner.config, f"output_dir={out}", "train.overwrite=true", "--quiet"
    )
    assert code == 0
    lines = (out / "metrics.csv").read_text().splitlines()
    assert len(lines) == 2 and "old_metric" not in lines[0]  # a fresh log, not rows under the old header
    assert (out / "notes.txt").read_text() == "mine"  # only a run's own files are deleted


def test_resume_and_overwrite_together_are_refused(tiny_captioner, tmp_path, capsys) -> None:
    out = _earlier_run(tiny_captioner, tmp_path / "run", ("best.pt", "last.pt", "metrics.csv"))
    before = _snapshot(out)
    code, _, err = run_cli(
        capsys, "train", tiny_captioner.config, f"output_dir={out}", "train.overwrite=true", "--resume"
    )
    assert code == 1
    assert_one_error(err, "train", f"{out}: --resume and train.overwrite=true contradict each other")
    assert _snapshot(out) == before


def test_output_dir_that_is_a_file(tiny_captioner, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    out.write_text("a file")
    code, _, err = run_cli(capsys, "train", tiny_captioner.config, f"output_dir={out}")
    assert code == 1
    assert_one_error(err, "train", f"{out}: output_dir is a file, not a folder")
    code, _, err = run_cli(capsys, "train", tiny_captioner.config, f"output_dir={out / 'sub'}")
    assert code == 1
    assert_one_error(err, "train", f"{out / 'sub'}: output_dir is not writable (not a directory)")
    assert out.read_text() == "a file"


def test_unwritable_output_dir(tmp_path, monkeypatch) -> None:
    # Permission bits do not stop root, so the refusal of the OS is simulated.
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(OutputDirError, match=r"run: output_dir is not writable \(permission denied\)$"):
        _claim(tmp_path / "run")
    monkeypatch.setattr(run_dir.os, "open", refuse)
    with pytest.raises(OutputDirError, match=r"other: output_dir is not writable \(permission denied\)$"):
        _claim(tmp_path / "other")


def test_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"task": "captioning", "model": {"w": torch.ones(3)}, "epoch": 1})
    before = path.read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    with pytest.raises(CheckpointError) as caught:
        save_checkpoint(path, {"task": "captioning", "model": {"w": torch.zeros(3)}, "epoch": 2})
    message = str(caught.value)
    assert message == f"{path}: cannot save checkpoint: no space left on device (the previous file is kept)"
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_full_disk_while_training_is_one_line(tiny_captioner, tmp_path, capsys, monkeypatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", tiny_captioner.config, f"output_dir={out}", "--quiet")
    assert code == 1
    epoch, error = error_lines(err)  # the epoch's metrics, then the error
    assert epoch.startswith("epoch 1/1: ")
    # metrics.csv is the epoch's first file: the same one line, through the same write path.
    assert (
        error
        == f"vision2seq train: error: {out / 'metrics.csv'}: cannot write metrics: no space left on device"
    )
    assert not out.exists()  # nothing was written: no temporary file, and no empty run folder
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(out / "best.pt")


def test_claims_nest_within_a_process_and_are_released(tmp_path) -> None:
    out = tmp_path / "run"
    with claim_output_dir(out):
        (out / "best.pt").write_bytes(b"a run's file")
        _claim(out)  # e.g. train() claims before building data, fit() claims again: no refusal
        script = (
            "from vision2seq.engine.run_dir import claim_output_dir as c\n"
            + f"with c({str(out)!r}, True): pass"
        )
        other = subprocess.run(  # another process is refused meanwhile
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert other.returncode == 1 and "output_dir is in use by another running" in other.stderr
    with pytest.raises(OutputDirError, match=r"holds another run \(best\.pt\)"):
        _claim(out)  # released: the next claim checks again, and finds the run's file
