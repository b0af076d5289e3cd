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
    "gemm_peak_gflops",
    *(
        f"peak_fraction_{w}"
        for w in (
            "encoder_forward",
            "encoder_train_step",
            "decoder_train_step_show_tell",
            "decoder_train_step_attention",
            "beam_search_show_tell",
            "beam_search_attention",
            "greedy_show_tell",
            "greedy_attention",
        )
    ),
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


def _run_gpu_check(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "benchmarks/run.py", "--gpu", *extra, "--workdir", str(tmp_path / "w")]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def test_gpu_check_quick_runs_every_part(tmp_path: Path) -> None:
    """`--gpu --quick` runs the GPU check's code (on the CPU with gloo here) and writes one JSON."""
    output = tmp_path / "gpu.json"
    done = _run_gpu_check(tmp_path, "--quick", "--output", str(output))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["quick"] is True and result["errors"] == {}
    amp = {f["key"]: f for f in result["amp"]}
    assert set(amp) == CUDA_ONLY
    assert all(math.isfinite(f["value"]) and f["value"] > 0 for f in amp.values())
    ddp = result["ddp"]
    assert ddp["backend"] == ("nccl" if torch.cuda.is_available() else "gloo")
    assert set(ddp["runs"]) == {"1", "2"} if not torch.cuda.is_available() else "1" in ddp["runs"]
    assert all(run["samples_per_s"] > 0 for run in ddp["runs"].values())
    assert result["caption"]["end_to_end_images_per_s"] > 0 and result["caption"]["end_to_end_fraction"] > 0
    assert result["classify"]["end_to_end_clips_per_s"] > 0
    assert "DDP" in done.stdout and "caption" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_gpu_check_without_cuda_says_why(tmp_path: Path) -> None:
    done = _run_gpu_check(tmp_path, "--output", str(tmp_path / "gpu.json"))
    assert done.returncode == 2
    assert "no CUDA device" in done.stderr and "--quick" in done.stderr
    assert not (tmp_path / "gpu.json").exists()
