"""Python-API speed with torch's default thread count, with one thread, and with vision2seq's automatic
choice (docs/performance.md, "Threads and loader workers"). Not part of ``run.py``: it needs minutes
and a competing process, and its figure is the ratio between modes measured in the same run.

    python benchmarks/python_threads.py 2     # 2 rounds of: default, one, auto; each a fresh process

Each round trains ``synthetic.train_shapes_captioner`` (200 images, 2 epochs, data and feature cache
included) and streams 40 frames (240x320) through ``VideoClassifier.stream().push`` with a
``synthetic.train_motion_classifier`` model, in a fresh process per mode, while a
``python3 -c 'while 1: pass'`` keeps a core busy. One line per measurement on stdout, with the load.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODES = ("default", "one", "auto")


def measure(mode: str, work: str, root: str) -> None:
    """One measurement in this process: ``mode`` default / one / auto, ``work`` train / push."""
    import numpy as np
    import torch

    import vision2seq
    from vision2seq import synthetic

    if mode == "default":
        vision2seq.set_threads(torch.get_num_threads())  # keep torch's own count
    elif mode == "one":
        vision2seq.set_threads(1)
    start = time.perf_counter()
    if work == "train":
        synthetic.train_shapes_captioner(root, n_train=200, n_val=50, n_test=50, overrides=["train.epochs=2"])
    else:
        from vision2seq.inference.classifier import VideoClassifier

        classifier = VideoClassifier.from_checkpoint(Path(root) / "run" / "best.pt", device="cpu")
        frames = np.random.default_rng(0).integers(0, 255, (40, 240, 320, 3), dtype=np.uint8)
        start = time.perf_counter()
        stream = classifier.stream()
        for frame in frames:
            stream.push(frame)
    seconds = time.perf_counter() - start
    load = os.getloadavg()[0]
    print(f"{work} {mode} threads={torch.get_num_threads()} {seconds:.1f}s load={load:.1f}", flush=True)


def main(rounds: int) -> None:
    import vision2seq
    from vision2seq.synthetic import train_motion_classifier

    scratch = tempfile.mkdtemp(prefix="python_threads")
    motion = str(Path(scratch) / "motion")
    vision2seq.set_threads(1)
    train_motion_classifier(motion)
    busy = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    try:
        for r in range(rounds):
            for mode in MODES:
                for work in ("train", "push"):
                    root = motion if work == "push" else str(Path(scratch) / f"shapes_{r}_{mode}")
                    subprocess.run([sys.executable, __file__, "--child", mode, work, root], check=True)
    finally:
        busy.kill()


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        measure(*sys.argv[2:5])
    else:
        main(int(sys.argv[1]))
