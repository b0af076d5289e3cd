"""The benchmark suite runs end to end in its quick mode and reports every figure.

Only the plumbing is checked here (each benchmark runs, each figure is a number or an explained skip);
speed targets belong to ``benchmarks/run.py`` and are never asserted in tests.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # end-to-end runs; `pytest -m 'not slow'` leaves them out

REPO = Path(__file__).resolve().parent.parent

EXPECTED = {
    "train_cache_speedup_show_tell",
    "train_cache_speedup_attention",
    "train_encoder_grouped_speedup",
    "beam_batched_speedup_attention",
    "beam_vs_greedy_attention",
    "beam_batched_speedup_show_tell",
    "beam_vs_greedy_show_tell",
    "caption_cli_fraction",
    "video_loader_vs_encoder",
    "video_loader_feeding_encoder",
    "memory_peak_rss_ratio",
    "memory_peak_anon_ratio",
    "cuda_bf16_encoder_speedup",
    "cuda_bf16_train_step_speedup",
    "video_caption_end_to_end_fraction",
    "video_caption_train_cache_speedup",
    "lite0_vs_resnet50_encoder_speed",
}
CUDA_ONLY = {"cuda_bf16_encoder_speedup", "cuda_bf16_train_step_speedup"}


def test_quick_run_reports_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/run.py",
            "--quick",
            "--output",
            str(output),
            "--workdir",
            str(tmp_path / "w"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["quick"] is True
    assert {"cpu_count", "torch", "torch_threads"} <= set(result["machine"])
    assert all(run["error"] is None for run in result["benchmarks"].values()), result["benchmarks"]

    figures = {f["key"]: f for f in result["figures"]}
    assert set(figures) == EXPECTED
    for key, figure in figures.items():
        if key in CUDA_ONLY and not torch.cuda.is_available():
            assert figure["value"] is None and figure["skipped"] == "no CUDA"
            continue
        if key == "lite0_vs_resnet50_encoder_speed" and figure["skipped"]:
            assert figure["value"] is None and "needs" in figure["skipped"]  # timm / Lite0 not installed
            continue
        value = figure["value"]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, (key, figure)
        assert figure["skipped"] is None
        assert figure["met"] is None if figure["target"] is None else isinstance(figure["met"], bool)
        assert figure["baseline"], key
    # The printed table names every figure.
    for key in EXPECTED:
        assert key in done.stdout
