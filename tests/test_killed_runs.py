"""Killed runs lose nothing: SIGKILL mid-epoch, resume, and get exactly the uninterrupted result; a kill
while a checkpoint is being written leaves the previous one loadable; a NaN loss stops with its step."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from vision2seq.__main__ import main
from vision2seq.config import load_config
from vision2seq.demo import make_shapes_dataset
from vision2seq.engine.checkpoint import load_checkpoint, save_checkpoint
from vision2seq.engine.loop import TrainingError
from vision2seq.train import train

pytestmark = pytest.mark.slow  # end-to-end runs; `pytest -m 'not slow'` leaves them out

CONFIG = """\
task: captioning
output_dir: {out}
seed: 5
data: {{annotations: {data}/dataset_shapes.json, images: {data}/images, train_splits: [train],
        min_word_freq: 1, cache_dir: {cache}}}
model:
  encoder: {{name: mobilenet_v3_small, weights: null, output: grid, image_size: 64}}
  decoder: {{kind: attention, embed_dim: 16, hidden_dim: 32, attention_dim: 16, dropout: 0.3}}
train: {{epochs: 3, batch_size: 4, lr: 0.003, num_workers: 0, checkpoint_every: 3, scheduler: cosine}}
generation: {{beam_size: 2, max_len: 10}}
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    make_shapes_dataset(root / "data", n_train=30, n_val=4, n_test=4, seed=2)
    return root


def write_config(root, name):
    path = root / f"{name}.yaml"
    path.write_text(CONFIG.format(out=root / name, data=root / "data", cache=root / "cache"))
    return path


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(dataset):
    assert main(["train", str(write_config(dataset, "straight")), "--quiet"]) == 0
    config = write_config(dataset, "killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vision2seq", "train", str(config), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = dataset / "killed" / "last.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if last.exists() and 6 <= load_checkpoint(last)["step"] < 45:  # mid-run; epochs are 23 steps
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(last)
    assert killed_at["step"] < 69 and killed_at["batch_in_epoch"] > 0  # stopped mid-epoch
    assert main(["train", str(config), "--resume", "--quiet"]) == 0
    resumed, straight = load_checkpoint(last), load_checkpoint(dataset / "straight" / "last.pt")
    assert resumed["step"] == straight["step"] == 69 and resumed["epoch"] == 3
    for name, tensor in straight["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert resumed["metrics"]["bleu_4"] == pytest.approx(straight["metrics"]["bleu_4"])


def test_kill_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"task": "captioning", "model": {"w": torch.ones(3)}, "epoch": 1})
    script = textwrap.dedent(f"""
        import torch
        from vision2seq.engine.checkpoint import save_checkpoint
        print("writing", flush=True)
        big = {{"w": torch.zeros(150_000_000)}}
        save_checkpoint({str(path)!r}, {{"task": "captioning", "model": big, "epoch": 2}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".last.pt.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)  # killed mid-write (600 MB take a while)
    proc.wait()
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 1 and torch.equal(ckpt["model"]["w"], torch.ones(3))


def test_nan_loss_stops_with_its_step_or_is_skipped(dataset, capsys):
    config = load_config(
        write_config(dataset, "nan"), ["train.lr=1e30", "train.grad_clip=null", "train.epochs=2"]
    )
    with pytest.raises(TrainingError, match=r"loss became (nan|inf) at step \d+"):
        train(config, progress=False)
    assert not (dataset / "nan" / "best.pt").exists()  # a NaN model is never saved as best
    config = load_config(
        write_config(dataset, "nan_skip"),
        ["train.lr=1e30", "train.grad_clip=null", "train.epochs=1", "train.skip_nonfinite=true"],
    )
    train(config, progress=False)
    assert "skipping batch at step" in capsys.readouterr().err
    best = load_checkpoint(dataset / "nan_skip" / "best.pt")
    assert all(torch.isfinite(t).all() for t in best["model"].values() if t.is_floating_point())
