"""Run the benchmark suite, print a table of figures and write them as JSON.

    python benchmarks/run.py                 # full suite (a few minutes on a 2-core CPU)
    python benchmarks/run.py --quick         # tiny sizes: checks that everything runs (seconds)
    python -m benchmarks --only beam_search memory --output benchmarks/results-beam.json
    python benchmarks/run.py --gpu           # the GPU check (CUDA): bf16, DDP on every GPU, end to end
    python benchmarks/run.py --gpu --quick   # the same code on the CPU at tiny sizes (gloo, fp32)

Each figure is a ratio of two measurements taken in this run; see benchmarks/README.md for what each measures.
The exit status is 0 when every benchmark ran (targets missed or not: these are measurements, not
tests; ``--strict`` also fails on a missed target), 1 when one crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import (
    bench_beam_search,
    bench_caption_cli,
    bench_cuda_amp,
    bench_memory,
    bench_pretrained_encoder,
    bench_roofline,
    bench_trained_encoder,
    bench_training_cache,
    bench_video_captioning,
    bench_video_pipeline,
)
from benchmarks.common import Context, Figure, machine_info

BENCHMARKS: dict[str, Callable[[Context], list[Figure]]] = {
    "training_cache": bench_training_cache.run,
    "trained_encoder": bench_trained_encoder.run,
    "beam_search": bench_beam_search.run,
    "caption_cli": bench_caption_cli.run,
    "video_pipeline": bench_video_pipeline.run,
    "memory": bench_memory.run,
    "cuda_amp": bench_cuda_amp.run,
    "video_captioning": bench_video_captioning.run,
    "roofline": bench_roofline.run,
    "pretrained_encoder": bench_pretrained_encoder.run,
}
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"


def _format_value(figure: Figure) -> str:
    if figure.value is None:
        return "-"
    return f"{figure.value:g}{figure.unit}"


def format_table(figures: Sequence[Figure]) -> str:
    """A plain-text table: figure, value, target, met."""
    rows = [("figure", "value", "target", "met")]
    for f in figures:
        target = f"{f.op} {f.target:g}{f.unit}" if f.target is not None else "(info)"
        met = {True: "yes", False: "NO", None: "-"}[f.met]
        if f.skipped:
            met = f"skipped: {f.skipped}"
        rows.append((f.key, _format_value(f), target, met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_suite(names: Sequence[str], quick: bool, workdir: Path) -> dict:
    """Run the named benchmarks; returns the JSON document (figures, timings, machine)."""
    if quick:  # tiny ops on a loaded 2-core machine stall on OpenMP barriers; timings are not the point
        import torch

        torch.set_num_threads(1)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    suite_start = time.perf_counter()
    figures: list[Figure] = []
    runs: dict[str, dict] = {}
    for name in names:
        print(f"[{name}]", file=sys.stderr, flush=True)
        ctx = Context(quick=quick, workdir=workdir / name)
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        load_before, start = os.getloadavg()[0], time.perf_counter()
        error = None
        try:
            produced = BENCHMARKS[name](ctx)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            produced = [Figure(f"{name}_error", f"{name} crashed", None, None, skipped=f"error: {error}")]
        seconds = round(time.perf_counter() - start, 1)
        runs[name] = {
            "seconds": seconds,
            "loadavg_1m_before": round(load_before, 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
            "error": error,
        }
        print(f"  done in {seconds} s", file=sys.stderr, flush=True)
        figures.extend(produced)
    loads = [v for r in runs.values() for v in (r["loadavg_1m_before"], r["loadavg_1m_after"])]
    cores = os.cpu_count() or 1
    return {
        "suite": "vision2seq benchmarks",
        # Our own process adds up to ~cores to the load average; more than that means other work.
        "max_loadavg_1m": max(loads, default=0.0),
        "busy": max(loads, default=0.0) > 1.5 * cores,
        "quick": quick,
        "started_utc": started,
        "seconds": round(time.perf_counter() - suite_start, 1),
        "machine": machine_info(),
        "benchmarks": runs,
        "figures": [f.to_json() for f in figures],
    }


def _gpu_main(args: argparse.Namespace) -> int:
    """``--gpu``: one JSON of the GPU check; 2 without CUDA (unless quick), 1 when a part failed."""
    from benchmarks import gpu_check

    output = gpu_check.DEFAULT_OUTPUT if args.output == DEFAULT_OUTPUT else args.output
    with tempfile.TemporaryDirectory(prefix="vision2seq-gpu-") as tmp:
        try:
            result = gpu_check.run_gpu_check(args.quick, args.workdir or Path(tmp))
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(gpu_check.summary(result))
    print(f"\nwrote {output}")
    return 1 if result["errors"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: a smoke run")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(BENCHMARKS),
        default=list(BENCHMARKS),
        metavar="NAME",
        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write")
    parser.add_argument("--workdir", type=Path, help="keep generated data here (default: a temporary folder)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="run the GPU check instead (benchmarks/gpu_check.py; writes benchmarks/gpu-results.json)",
    )
    args = parser.parse_args(argv)
    if args.gpu:
        return _gpu_main(args)

    with tempfile.TemporaryDirectory(prefix="vision2seq-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        result = run_suite(args.only, args.quick, workdir)
    figures = [Figure(**{k: v for k, v in f.items() if k != "met"}) for f in result["figures"]]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    print(
        f"\nvision2seq benchmarks{' (quick)' if args.quick else ''}: {m['cpu_count']}-core {m['cpu']}, "
        f"torch {m['torch']}, {m['torch_threads']} threads, {result['seconds']} s"
    )
    print(format_table(figures))
    if result["busy"]:
        print(
            f"\nwarning: other processes kept the machine busy (1-minute load average up to "
            f"{result['max_loadavg_1m']} on {m['cpu_count']} cores): timing figures are unreliable, and "
            "biased towards the side with many small operations; rerun on an idle machine"
        )
    print(f"\nwrote {args.output}")
    crashed = any(r["error"] for r in result["benchmarks"].values())
    missed = any(f.met is False for f in figures)
    return 1 if crashed or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
