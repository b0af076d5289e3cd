"""Figure 5: peak memory of training from a feature cache of N items vs 10N items.

Two synthetic caches in the package's layout (``features.npy`` float16 + ``meta.json``) with
ResNet-50-grid-sized rows, 49 x 2048 float16 = 196 KiB each: N = 200 items (39 MiB) and 10N = 2,000
items (392 MiB; 784 MiB if loaded as float32). Each run is a fresh process: a new interpreter
(``python -m benchmarks.bench_memory SPEC``) imports torch and vision2seq once and forks one process
per run (a fork starts its own peak-RSS counter), which trains for 300 steps of batch 32 drawn at
random with replacement (so both runs touch nearly every row) through ``FeatureStore`` -> ``ImageSource`` ->
``CaptionPairs`` -> ``DataLoader`` (``num_workers=0``, as the package uses for caches) ->
``CaptioningTask.training_step`` + backward + Adam. The decoder is a small Show-and-Tell (embed 64,
hidden 128, vocabulary 1,000; its size does not change with N) and no encoder weights are loaded, so
the N run's memory is as small as possible and the ratio is strict.

Figures (peaks read from ``/proc/self/status`` at the end of each run):

* ``memory_peak_rss_ratio``: VmHWM (peak resident set, = ``ru_maxrss``) of 10N / N. It includes file
  pages mapped into the process: a ``FeatureStore`` that read rows through a memory map counted every
  page it had touched (1.61-1.65x here); rows read with ``os.pread`` (the package since commit
  026e527) leave them in the page cache, outside the process.
* ``memory_peak_anon_ratio`` (informational): peak anonymous memory (RssAnon, sampled every step):
  the memory the process itself allocated; a cache loaded whole would show here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO_ROOT, Context, Figure, proc_status_mb


@dataclass(frozen=True)
class Sizes:
    items: int  # N
    row: tuple[int, ...]
    steps: int
    batch_size: int


FULL = Sizes(200, (49, 2048), steps=300, batch_size=32)
QUICK = Sizes(16, (9, 64), steps=10, batch_size=4)
WORDS = [f"w{i}" for i in range(996)]


def write_store(directory: Path, items: int, row: tuple[int, ...], seed: int = 0) -> Path:
    """A complete feature cache of ``items`` random float16 rows, keyed by (fake) image paths."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    block = rng.standard_normal((64, *row), dtype=np.float32).astype(np.float16)
    array = np.lib.format.open_memmap(
        directory / "features.npy", mode="w+", dtype=np.float16, shape=(items, *row)
    )
    for start in range(0, items, len(block)):
        stop = min(items, start + len(block))
        array[start:stop] = block[: stop - start]
    array.flush()
    del array
    keys = [f"/benchmark/images/{i:06d}.jpg" for i in range(items)]
    from vision2seq.data.features import write_meta

    write_meta(directory, keys, {})
    return directory


def child(directory: Path, steps: int, batch_size: int) -> dict[str, Any]:
    """Train from the cache in ``directory``; return the memory counters (MiB)."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from vision2seq.config import CaptioningConfig
    from vision2seq.data.caption_datasets import CaptionPairs, ImageSource, collate_captions
    from vision2seq.data.captions import CaptionedImage
    from vision2seq.data.features import FeatureStore
    from vision2seq.data.vocab import SPECIALS, Vocabulary
    from vision2seq.models.caption_model import CaptionModel, build_decoder
    from vision2seq.models.normalization import FeatureNorm
    from vision2seq.tasks.captioning import CaptioningTask

    at_start = proc_status_mb()
    torch.set_num_threads(1)  # the runs share the cores; their speed is not what is measured
    torch.manual_seed(0)
    store = FeatureStore(directory)
    rng = np.random.default_rng(0)
    records = [
        CaptionedImage(key, Path(key), ["x"], [list(rng.choice(WORDS, int(rng.integers(8, 15))))], "train")
        for key in store.keys
    ]
    vocab = Vocabulary([*SPECIALS, *WORDS])
    pairs = CaptionPairs(records, ImageSource([r.path for r in records], None, store), vocab, 16)  # type: ignore[arg-type]
    sampler = RandomSampler(
        pairs, replacement=True, num_samples=steps * batch_size, generator=torch.Generator().manual_seed(0)
    )
    loader = DataLoader(pairs, batch_size=batch_size, sampler=sampler, collate_fn=collate_captions)
    feature_dim = int(np.load(directory / "features.npy", mmap_mode="r").shape[-1])
    model = CaptionModel(
        torch.nn.Identity(),
        build_decoder("show_tell", feature_dim, len(vocab), embed_dim=64, hidden_dim=128),
        vocab.bos_id,
        vocab.eos_id,
        FeatureNorm(
            feature_dim, enabled=False
        ),  # raw cached features: the memory of reading them is measured
    )  # type: ignore[arg-type]
    task = CaptioningTask(CaptioningConfig(), vocab)
    optimizer = torch.optim.Adam(model.decoder.parameters(), lr=1e-3)
    peak_anon = at_start["RssAnon"]
    for batch in loader:
        loss = task.training_step(model, batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        peak_anon = max(peak_anon, proc_status_mb(("RssAnon",))["RssAnon"])
    at_end = proc_status_mb()
    return {"start": at_start, "end": at_end, "peak_rss": at_end["VmHWM"], "peak_anon": peak_anon}


def _import_training_modules() -> None:
    """Everything ``child`` imports, so forked runs start with it loaded (as a fresh process would)."""
    import torch.utils.data  # noqa: F401

    import vision2seq.config
    import vision2seq.data.caption_datasets
    import vision2seq.models.caption_model
    import vision2seq.tasks.captioning  # noqa: F401


def fork_runs(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Run ``child(**spec)`` for every spec at once, each in its own forked process.

    The forking process has only imported the modules, and the kernel starts every fork's peak RSS
    counter afresh (from what it maps at that moment), so each run is measured as a fresh process that
    has done its imports, without paying for the imports once per run.
    """
    _import_training_modules()
    pending = {}
    for key, spec in runs.items():
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the run
            os.close(read_end)
            try:
                payload = json.dumps(child(**spec))
                code = 0
            except BaseException:
                payload, code = json.dumps({"error": traceback.format_exc()}), 1
            with os.fdopen(write_end, "w") as out:
                out.write(payload)
            os._exit(code)
        os.close(write_end)
        pending[key] = (pid, read_end)
    results = {}
    for key, (pid, read_end) in pending.items():
        with os.fdopen(read_end) as reply:
            results[key] = json.loads(reply.read() or '{"error": "no output"}')
        os.waitpid(pid, 0)
    return results


def run_in_fresh_process(runs: dict[str, dict[str, Any]], env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``fork_runs`` in a new interpreter (``python -m benchmarks.bench_memory SPEC.json``)."""
    spec = json.dumps({key: {**r, "directory": str(r["directory"])} for key, r in runs.items()})
    command = [sys.executable, "-m", "benchmarks.bench_memory", spec]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory runs failed: {done.stderr[-3000:]}")
    results = json.loads(done.stdout.strip().splitlines()[-1])
    errors = [f"{key}: {r['error']}" for key, r in results.items() if "error" in r]
    if errors:
        raise RuntimeError("memory run failed: " + "\n".join(errors)[-3000:])
    return results


def run(ctx: Context) -> list[Figure]:
    s = QUICK if ctx.quick else FULL
    root = ctx.workdir / "memory"
    sizes = {"N": s.items, "10N": 10 * s.items}
    ctx.log(f"writing feature caches of {sizes['N']} and {sizes['10N']} rows of {s.row} float16")
    stores = {name: write_store(root / name, n, s.row) for name, n in sizes.items()}
    ctx.log(f"training {s.steps} steps in 2 fresh processes at once (N and 10N)")
    runs = {name: {"directory": stores[name], "steps": s.steps, "batch_size": s.batch_size} for name in sizes}
    # Concurrent runs change each other's speed, not their memory.
    results = run_in_fresh_process(runs, ctx.child_env())
    file_mib = {name: round((stores[name] / "features.npy").stat().st_size / 2**20, 1) for name in sizes}

    def ratio(key: str) -> float:
        return round(results["10N"][key] / results["N"][key], 3)

    def mib(key: str) -> dict[str, float]:
        return {name: round(results[name][key], 1) for name in sizes}

    common = {
        "items": sizes,
        "row": f"{list(s.row)} float16",
        "file_mib": file_mib,
        "steps": s.steps,
        "batch_size": s.batch_size,
        "start_mib": {k: {m: round(v, 1) for m, v in r["start"].items()} for k, r in results.items()},
        "end_mib": {k: {m: round(v, 1) for m, v in r["end"].items()} for k, r in results.items()},
    }
    return [
        Figure(
            key="memory_peak_rss_ratio",
            title="peak RSS (VmHWM) training from a cache of 10N vs N items",
            value=ratio("peak_rss"),
            target=1.2,
            op="<=",
            baseline=f"same training on N={s.items} items, fresh process",
            details={**common, "peak_rss_mib": mib("peak_rss"), "peak_anon_mib": mib("peak_anon")},
        ),
        Figure(
            key="memory_peak_anon_ratio",
            title="peak anonymous memory (RssAnon) training from a cache of 10N vs N items (informational)",
            value=ratio("peak_anon"),
            target=None,
            op="<=",
            baseline=f"same training on N={s.items} items, fresh process",
            details={"peak_anon_mib": mib("peak_anon")},
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="memory-benchmark training runs (internal)")
    parser.add_argument("spec", help='JSON {key: {"directory", "steps", "batch_size"}}')
    runs = {
        key: {**r, "directory": Path(r["directory"])}
        for key, r in json.loads(parser.parse_args().spec).items()
    }
    print(json.dumps(fork_runs(runs)))


if __name__ == "__main__":
    main()
