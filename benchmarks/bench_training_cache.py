"""Figure 1: captioning training with a frozen encoder, feature cache vs running the encoder each step.

Both sides train the same decoder on the same batches (same ``CaptionPairs``, same shuffled order,
batch 32) with ``CaptioningTask.training_step`` + backward + gradient clipping + Adam step:

* cache (candidate): the package's own path: ``image_sources`` builds the memory-mapped float16 cache
  with the frozen encoder once (not timed), and batches read their rows from the ``FeatureStore``;
* encoder (baseline): the images are decoded and transformed ONCE up front (pre-decoded tensors, not
  timed; this favours the baseline), and every step runs the encoder under ``no_grad`` on the batch.

Figure = cache steps/s / encoder steps/s. Full mode: ResNet-50 (random init) at 224 px on 64 generated
shape images (192 image-caption pairs); decoders at the package's default sizes (embed 256, hidden 512,
attention 256) with a 5,000-word vocabulary (the corpus words padded with fillers): Show-and-Tell on
the pooled 2048-d feature, and Show-Attend-and-Tell on the 7x7x2048 grid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmarks.common import Context, Figure, interleave, padded_vocabulary


@dataclass(frozen=True)
class Sizes:
    encoder: str
    image_size: int | None
    images: int
    batch_size: int
    vocab: int
    embed: int
    hidden: int
    attention: int
    rounds: int
    encoder_steps: int  # baseline steps per round
    cache_steps: int  # candidate steps per round


FULL = Sizes("resnet50", None, 64, 32, 5000, 256, 512, 256, rounds=3, encoder_steps=1, cache_steps=6)
QUICK = Sizes("resnet18", 64, 16, 8, 200, 32, 64, 32, rounds=1, encoder_steps=1, cache_steps=2)


class PreDecodedSource:
    """An ``ImageSource`` stand-in whose images were decoded and transformed once, up front."""

    input_key = "images"

    def __init__(self, pixels: list[torch.Tensor]) -> None:
        self.pixels = pixels

    def __call__(self, i: int) -> torch.Tensor:
        return self.pixels[i]


def _cycle(loader: DataLoader):
    while True:
        yield from loader


def _make_step(
    model: nn.Module, task: Any, optimizer: torch.optim.Optimizer, run_encoder: bool
) -> Callable[[Mapping[str, Any]], float]:
    params = [p for p in model.parameters() if p.requires_grad]

    def step(batch: Mapping[str, Any]) -> float:
        if run_encoder:
            with torch.no_grad():
                batch = {"features": model.encoder(batch["images"]), "captions": batch["captions"]}
        losses = task.training_step(model, batch)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        optimizer.step()
        return float(losses["loss"].detach())

    return step


def run(ctx: Context) -> list[Figure]:
    from vision2seq.config import CaptioningConfig
    from vision2seq.data.caption_datasets import (
        CaptionPairs,
        collate_captions,
        image_sources,
        prepare_records,
    )
    from vision2seq.data.images import load_image
    from vision2seq.demo import make_shapes_dataset
    from vision2seq.tasks.base import build_encoder
    from vision2seq.tasks.captioning import CaptioningTask, build_model

    s = QUICK if ctx.quick else FULL
    root = ctx.workdir / "training_cache"
    annotations = make_shapes_dataset(root / "data", n_train=s.images, n_val=0, n_test=0, seed=1)
    figures = []
    for kind, output in (("show_tell", "pooled"), ("attention", "grid")):
        config = CaptioningConfig()
        config.data.annotations, config.data.images = str(annotations), str(root / "data" / "images")
        config.data.train_splits, config.data.cache_dir = ["train"], str(root / "cache")
        config.data.max_caption_len = 16
        enc = config.model.encoder
        enc.name, enc.weights, enc.output, enc.image_size = s.encoder, None, output, s.image_size
        dec = config.model.decoder
        dec.kind, dec.embed_dim, dec.hidden_dim, dec.attention_dim = kind, s.embed, s.hidden, s.attention
        config.train.batch_size, config.train.num_workers = s.batch_size, 0 if ctx.quick else 2

        torch.manual_seed(0)
        records = prepare_records(config, config.data.train_splits)
        vocab = padded_vocabulary((t for r in records for t in r.tokens), s.vocab)
        encoder = build_encoder(config)
        ctx.log(f"{kind}: building the {output} feature cache ({s.encoder}, {len(records)} images)")
        [(cached, kept)] = image_sources(config, encoder, [records], torch.device("cpu"))
        assert cached.store is not None and len(kept) == len(records)
        transform = encoder.preprocessing.transform()
        decoded = PreDecodedSource([transform(load_image(r.path)) for r in records])

        task = CaptioningTask(config, vocab)
        sides: dict[str, Callable[[], object]] = {}
        for name, source, run_encoder, steps in (
            ("encoder", decoded, True, s.encoder_steps),
            ("cache", cached, False, s.cache_steps),
        ):
            torch.manual_seed(1)  # same initial decoder on both sides
            model = build_model(config, vocab, encoder=encoder)
            optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=4e-4)
            pairs = CaptionPairs(records, source, vocab, config.data.max_caption_len)  # type: ignore[arg-type]
            order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0)).tolist()
            loader = DataLoader(pairs, batch_size=s.batch_size, sampler=order, collate_fn=collate_captions)
            batches, step = _cycle(loader), _make_step(model, task, optimizer, run_encoder)
            model.train()
            if not run_encoder:  # warm-up (allocations, Adam state); the encoder side's rounds are long
                step(next(batches))

            def steps_of(step=step, batches=batches, steps=steps) -> None:
                for _ in range(steps):
                    step(next(batches))

            sides[name] = steps_of
        ctx.log(f"{kind}: timing {s.rounds} interleaved rounds")
        t = interleave(s.rounds, sides)
        per_step = {"encoder": s.encoder_steps, "cache": s.cache_steps}
        rate = {name: per_step[name] / t.median(name) for name in sides}
        # steps/s ratio = (encoder s/step) / (cache s/step)
        scale = s.cache_steps / s.encoder_steps
        figures.append(
            Figure(
                key=f"train_cache_speedup_{kind}",
                title=f"train steps/s, feature cache vs encoder each step ({kind}, {output})",
                value=round(t.ratio("encoder", "cache", scale), 2),
                target=10.0,
                baseline=(
                    f"same decoder step + {s.encoder} forward (no_grad) on pre-decoded, pre-transformed "
                    "images each step"
                ),
                details={
                    "encoder": s.encoder,
                    "image_size": encoder.preprocessing.crop_size,
                    "feature_shape": list(cached.store.feature_shape),
                    "batch_size": s.batch_size,
                    "vocab": len(vocab),
                    "decoder": {"kind": kind, "embed": s.embed, "hidden": s.hidden, "attention": s.attention},
                    "cache_steps_per_s": round(rate["cache"], 3),
                    "encoder_steps_per_s": round(rate["encoder"], 3),
                    **t.ratio_details("encoder", "cache", scale),
                    "steps_per_round": per_step,
                    "timings": t.summary(),
                },
            )
        )
    return figures
