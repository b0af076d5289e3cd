"""Figure 3: ``vision2seq caption`` on a folder, end to end, vs the model's own batched throughput.

* candidate: the command ``vision2seq caption --checkpoint CKPT FOLDER`` in a fresh process (its
  defaults: batch 32, 2 decoding workers, the checkpoint's generation settings), timed from process
  start to its last output line; images/s = images / that time. It pays for everything: interpreter and
  torch import, checkpoint load, model build, worker start, JPEG decoding, preprocessing, captioning.
* baseline: in the benchmark's process, ``Captioner.caption_tensors`` on the same images already
  decoded and preprocessed (not timed), in batches of 32: the model's own images/s.

Figure = CLI images/s / in-process images/s. Full mode: 200 photo-sized (500x375) JPEGs; a checkpoint
built with ``save_checkpoint`` from a freshly initialised model: ResNet-18 (random init) at 224 px,
7x7x512 grid, Show-Attend-and-Tell decoder (embed 256, hidden 512, attention 256), vocabulary 5,000,
generation as the config defaults (beam search, beam 3, ``max_len`` 20; random weights run every
caption to 20 tokens).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from benchmarks.common import Context, Figure, interleave


@dataclass(frozen=True)
class Sizes:
    images: int
    width: int
    height: int
    encoder: str
    image_size: int | None
    vocab: int
    embed: int
    hidden: int
    attention: int
    rounds: int


FULL = Sizes(200, 500, 375, "resnet18", None, 5000, 256, 512, 256, rounds=2)
QUICK = Sizes(8, 96, 72, "resnet18", 64, 200, 32, 64, 32, rounds=1)
BATCH_SIZE = 32  # the CLI's default --batch-size


def write_photos(folder: Path, count: int, width: int, height: int, seed: int = 0) -> list[Path]:
    """``count`` photo-sized JPEGs: colour gradients, random shapes and sensor-like noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    paths = []
    for i in range(count):
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        mix = ((xx / width) * rng.uniform(0.3, 1) + (yy / height) * rng.uniform(0.3, 1))[..., None] / 2
        pixels = a * (1 - mix) + b * mix + rng.normal(0, 10, (height, width, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(2, 6))):
            x0, y0 = rng.uniform(0, width * 0.8), rng.uniform(0, height * 0.8)
            box = (x0, y0, x0 + rng.uniform(10, width / 3), y0 + rng.uniform(10, height / 3))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
        path = folder / f"photo_{i:04d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def build_checkpoint(path: Path, s: Sizes) -> None:
    """A captioning checkpoint of a freshly initialised model, in the layout ``engine.fit`` writes."""
    from vision2seq.config import CaptioningConfig, config_to_dict
    from vision2seq.data.vocab import SPECIALS, Vocabulary
    from vision2seq.engine.checkpoint import save_checkpoint
    from vision2seq.tasks.captioning import build_model

    config = CaptioningConfig()
    enc, dec = config.model.encoder, config.model.decoder
    enc.name, enc.weights, enc.output, enc.image_size = s.encoder, None, "grid", s.image_size
    dec.kind, dec.embed_dim, dec.hidden_dim, dec.attention_dim = "attention", s.embed, s.hidden, s.attention
    vocab = Vocabulary([*SPECIALS, *(f"word{i:05d}" for i in range(s.vocab - len(SPECIALS)))])
    torch.manual_seed(0)
    model = build_model(config, vocab)
    payload = {
        "task": "captioning",
        "config": config_to_dict(config),
        "extras": {"vocab": vocab.to_list()},
        "model": model.state_dict(),
    }
    save_checkpoint(path, payload)


def cli_command(checkpoint: Path, folder: Path) -> list[str]:
    """``vision2seq caption --checkpoint CKPT FOLDER`` (the installed script, else ``python -m``)."""
    script = Path(sys.executable).parent / "vision2seq"
    prefix = [str(script)] if script.is_file() else [sys.executable, "-m", "vision2seq"]
    return [*prefix, "caption", "--checkpoint", str(checkpoint), str(folder)]


def run_cli(
    command: list[str], expected: int, log_dir: Path, env: dict[str, str], first_lines: list[float]
) -> float:
    """Run the command; seconds from start to its last stdout line (checks one line per image).

    The time to its first line (startup + the first batch) is appended to ``first_lines``.
    """
    stderr_path = log_dir / "caption_cli.stderr"
    with open(stderr_path, "w") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
        assert proc.stdout is not None
        lines, first, last = 0, None, start
        for line in proc.stdout:
            if line.strip():
                lines, last = lines + 1, time.perf_counter()
                first = first or last
        code = proc.wait()
    if code != 0 or lines != expected:
        raise RuntimeError(
            f"{' '.join(command)} exited {code} with {lines}/{expected} captions: "
            f"{stderr_path.read_text()[-2000:]}"
        )
    first_lines.append(round((first or last) - start, 3))
    return last - start


def run(ctx: Context) -> list[Figure]:
    from vision2seq.data.images import load_image
    from vision2seq.inference.captioner import Captioner

    s = QUICK if ctx.quick else FULL
    root = ctx.workdir / "caption_cli"
    ctx.log(f"writing {s.images} {s.width}x{s.height} JPEGs and a {s.encoder} checkpoint")
    paths = write_photos(root / "photos", s.images, s.width, s.height)
    checkpoint = root / "model.pt"
    build_checkpoint(checkpoint, s)

    captioner = Captioner.from_checkpoint(checkpoint, device="cpu")
    pixels = torch.stack([captioner.transform(load_image(p)) for p in paths])
    batches = list(pixels.split(BATCH_SIZE))
    lengths: list[int] = []

    def in_process() -> None:
        lengths.clear()
        for batch in batches:
            captions, _ = captioner.caption_tensors(batch)
            lengths.extend(len(c.split()) for c in captions)

    command = cli_command(checkpoint, root / "photos")
    first_lines: list[float] = []
    captioner.caption_tensors(batches[0])  # warm-up
    ctx.log(f"timing {s.rounds} interleaved rounds: CLI on {s.images} files vs caption_tensors")
    t = interleave(
        s.rounds,
        {
            "cli": lambda: run_cli(command, len(paths), root, ctx.child_env(), first_lines),
            "model": in_process,
        },
    )
    cli_rate, model_rate = len(paths) / t.median("cli"), len(paths) / t.median("model")
    g, encoder = captioner.config.generation, captioner.model.encoder
    shutil.rmtree(root / "photos", ignore_errors=True)
    return [
        Figure(
            key="caption_cli_fraction",
            title=f"`vision2seq caption` on {s.images} files, end to end / model's batched throughput",
            value=round(t.ratio("model", "cli"), 3),
            target=0.7,
            baseline="Captioner.caption_tensors on pre-decoded, preprocessed batches of 32, in-process",
            details={
                "images": s.images,
                "image_size_px": [s.width, s.height],
                "encoder": f"{s.encoder} (random init), {encoder.preprocessing.crop_size} px, "
                f"grid {list(encoder.grid_size)}",
                "decoder": {
                    "kind": "attention",
                    "embed": s.embed,
                    "hidden": s.hidden,
                    "attention": s.attention,
                },
                "vocab": s.vocab,
                "generation": {"strategy": g.strategy, "beam_size": g.beam_size, "max_len": g.max_len},
                "mean_caption_words": round(sum(lengths) / max(1, len(lengths)), 2),
                "cli_images_per_s": round(cli_rate, 3),
                "cli_first_caption_s": first_lines,
                "model_first_batch_s": round(t.median("model") * min(BATCH_SIZE, len(paths)) / len(paths), 3),
                "model_images_per_s": round(model_rate, 3),
                **t.ratio_details("model", "cli"),
                "command": "vision2seq caption --checkpoint CKPT FOLDER (--batch-size 32 --workers 2)",
                "timings": t.summary(),
            },
        )
    ]
