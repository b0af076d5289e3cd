"""Two CPU processes with gloo (torchrun) train the same model as one process with the same global batch."""

import os
import subprocess
import sys

import pytest
import torch
from video_fixtures import make_ucf101_layout

from vision2seq.engine.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # end-to-end runs; `pytest -m 'not slow'` leaves them out

CONFIG = """\
task: video_classification
output_dir: {out}
seed: 0
data: {{videos: {videos}, annotations: {annotations}, num_frames: 4, cache_frames: 4, cache_dir: {cache}}}
model:
  encoder: {{name: resnet18, weights: null, image_size: 32}}
  temporal: {{kind: lstm, hidden_dim: 16, dropout: 0.0}}
train: {{epochs: 2, batch_size: {batch}, lr: 0.01, num_workers: 0, device: cpu}}
"""


def test_two_process_gloo_run_equals_single_process(tmp_path):
    videos, annotations = make_ucf101_layout(
        tmp_path / "data", groups=5, clips_per_group=2, test_groups=(1,), num_frames=6, size=(32, 32)
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for name, procs, batch in (("single", 1, 8), ("ddp", 2, 4)):  # the same global batch of 8
        config = tmp_path / f"{name}.yaml"
        config.write_text(
            CONFIG.format(
                out=tmp_path / name,
                videos=videos,
                annotations=annotations,
                cache=tmp_path / f"cache-{name}",
                batch=batch,
            )
        )
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={procs}",
            "-m",
            "vision2seq",
            "train",
            str(config),
            "--quiet",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = load_checkpoint(tmp_path / name / "last.pt")
    single, ddp = runs["single"], runs["ddp"]
    assert single["step"] == ddp["step"] == 4  # 16 training clips / global batch 8 x 2 epochs
    # The all-reduce adds the two ranks' float32 gradients in another order than one process's batch
    # mean does: the gradients differ in their last bits (~1e-7 relative), and Adam's g / sqrt(v) step
    # turns that into up to ~1e-5 in weights whose gradient is close to zero. 1e-4 is 0.25% of the most
    # any weight can move here (4 Adam steps of lr 0.01), and far below what a real sharding error does:
    # a rank whose gradient is lost or double-counted shifts weights by ~1e-3 and more.
    for key, tensor in single["model"].items():
        torch.testing.assert_close(ddp["model"][key], tensor, rtol=1e-4, atol=1e-4, msg=key)
    assert ddp["metrics"]["top1"] == single["metrics"]["top1"]
    assert len(ddp["rng"]) == 2  # each rank's RNG state is kept for resuming
