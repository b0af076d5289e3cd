"""Figures 7-8: video captioning, end to end vs the model alone, and training from the cache vs decoding.

* ``video_caption_end_to_end_fraction``: clips/s of ``VideoCaptioner.caption_files`` on the clip files
  (decode + segment sampling of T frames + transform in 2 loader workers, per-frame encoder, temporal
  encoder, beam search), over the clips/s of ``VideoCaptioner.caption_frames`` on the same clips already
  decoded and transformed (the model alone), same batches. Informational: how much of the model's rate
  survives decoding on this machine.
* ``video_caption_train_cache_speedup``: training steps/s of the package's training loader with a frozen
  encoder and the per-frame feature cache (``build_video_caption_data``: cached rows, no decoding, no
  CNN) over the same steps with ``data.cache_features=false`` (clips decoded in 2 loader workers, the
  encoder run on every frame), both with ``VideoCaptioningTask.training_step`` + backward + Adam.
  Informational: with ResNet-18 on a CPU the decoder step is a large part of both sides; a larger
  encoder (the configs' ResNet-152) makes the cache worth more.

Clips (full mode): 8 generated 320x240 MPEG-4 .mp4 clips of 2 s at 25 fps (textured moving scenes,
as in the video-pipeline benchmark; 600 kb/s) in an MSR-VTT annotation file, one caption each; batches
of 4 clips. Model: ResNet-18 (random init) at 224 px, T = 16 frames, bidirectional LSTM 512, attention
decoder at the package's default sizes (hidden 512); the captioning figure uses a 5,000-word vocabulary
(beam 3, ``max_len`` 20), the training figure the data's own vocabulary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.common import Context, Figure, interleave, padded_vocabulary


@dataclass(frozen=True)
class Sizes:
    clips: int
    width: int
    height: int
    seconds: float
    num_frames: int
    image_size: int | None
    batch_size: int
    vocab: int
    hidden: int
    rounds: int
    cache_epochs: int  # candidate epochs per round of the training figure (baseline: one)


FULL = Sizes(8, 320, 240, 2.0, 16, None, 4, 5000, 512, rounds=3, cache_epochs=10)
QUICK = Sizes(4, 64, 48, 1.0, 4, 64, 2, 200, 32, rounds=1, cache_epochs=2)


def make_dataset(root: Path, s: Sizes) -> tuple[Path, Path]:
    """Clips and a one-file MSR-VTT annotation (all clips train; the first two also validate)."""
    from benchmarks.bench_video_pipeline import textured_frames
    from vision2seq.synthetic import write_video

    videos, entries, sentences = root / "videos", [], []
    for i in range(s.clips):
        key = f"video{i}"
        frames = list(textured_frames(round(s.seconds * 25), s.height, s.width, seed=i))
        write_video(videos / f"{key}.mp4", frames, 25, quality=None, bit_rate=600_000)
        entries.append({"video_id": key, "split": "train"})
        sentences.append({"video_id": key, "caption": f"a square moves across a textured scene {i % 5}"})
    entries += [{"video_id": f"val{i}", "split": "validate"} for i in range(2)]
    for i in range(2):
        (videos / f"val{i}.mp4").write_bytes((videos / f"video{i}.mp4").read_bytes())
        sentences.append({"video_id": f"val{i}", "caption": "a square moves"})
    annotations = root / "videodatainfo.json"
    annotations.write_text(json.dumps({"videos": entries, "sentences": sentences}))
    return videos, annotations


def run(ctx: Context) -> list[Figure]:
    from vision2seq.config import VideoCaptioningConfig
    from vision2seq.data.video.caption_loaders import build_video_caption_data, load_clips
    from vision2seq.engine.loop import move_to
    from vision2seq.inference.video_captioner import VideoCaptioner
    from vision2seq.tasks.base import build_encoder
    from vision2seq.tasks.video_captioning import VideoCaptioningTask, build_model

    s = QUICK if ctx.quick else FULL
    ctx.log(f"writing {s.clips} {s.width}x{s.height} MPEG-4 clips")
    videos, annotations = make_dataset(ctx.workdir, s)
    config = VideoCaptioningConfig()
    d = config.data
    d.videos, d.annotations, d.num_frames, d.cache_frames = str(videos), str(annotations), s.num_frames, 32
    d.cache_dir, d.max_caption_len = str(ctx.workdir / "cache"), 16
    config.model.encoder.name, config.model.encoder.weights = "resnet18", None
    config.model.encoder.image_size = s.image_size
    config.model.temporal.hidden_dim = config.model.decoder.hidden_dim = s.hidden
    config.train.batch_size, config.train.num_workers = s.batch_size, 2
    config.generation.max_len = 20
    records = load_clips(config, ["train"])
    vocab = padded_vocabulary((t for r in records for t in r.tokens), s.vocab)
    torch.manual_seed(0)
    model = build_model(config, vocab).eval()
    captioner = VideoCaptioner(model, vocab, config, "cpu")
    paths = [r.path for r in records]

    # --- figure 7: end to end vs the model alone -------------------------------------------------
    clips = captioner.clips(paths)
    decoded = torch.stack([clips.load(i)[0] for i in range(len(clips))]).split(s.batch_size)

    def end_to_end() -> None:
        for result in captioner.caption_files(paths, batch_size=s.batch_size, num_workers=2, progress=False):
            assert result.error is None, result.error

    def model_alone() -> None:
        for batch in decoded:
            captioner.caption_frames(batch)

    model_alone()  # warm-up
    ctx.log(f"timing {s.rounds} interleaved rounds: caption_files vs caption_frames ({len(paths)} clips)")
    t = interleave(s.rounds, {"end_to_end": end_to_end, "model": model_alone})
    figures = [
        Figure(
            key="video_caption_end_to_end_fraction",
            title="video clips/s captioned end to end (2 workers) / model alone (informational)",
            value=round(t.ratio("model", "end_to_end"), 3),
            target=None,
            baseline="VideoCaptioner.caption_frames on the same clips already decoded and transformed",
            details={
                "clips": len(paths),
                "clip": f"{s.width}x{s.height} mpeg4, {s.seconds} s at 25 fps",
                "frames_per_clip": s.num_frames,
                "end_to_end_clips_per_s": round(len(paths) / t.median("end_to_end"), 3),
                "model_clips_per_s": round(len(paths) / t.median("model"), 3),
                "beam_size": config.generation.beam_size,
                "vocab": len(vocab),
                **t.ratio_details("model", "end_to_end"),
                "timings": t.summary(),
            },
        )
    ]

    # --- figure 8: training from the feature cache vs decoding every step -------------------------
    sides, steps = {}, {}
    for name, cached, epochs in (("decoded", False, 1), ("cache", True, s.cache_epochs)):
        d.cache_features = cached
        torch.manual_seed(1)
        encoder = build_encoder(config, pooled=True)
        if cached:
            ctx.log(f"building the per-frame feature cache ({len(paths)} clips x {d.cache_frames} frames)")
        data = build_video_caption_data(config, encoder, torch.device("cpu"))
        train_model = build_model(config, data.vocab, encoder=encoder).train()
        task = VideoCaptioningTask(config, data.vocab)
        optimizer = torch.optim.Adam([p for p in train_model.parameters() if p.requires_grad], lr=2e-4)
        steps[name] = epochs * len(data.train)

        def train_epochs(
            loader=data.train, model=train_model, task=task, opt=optimizer, epochs=epochs
        ) -> None:
            for epoch in range(epochs):
                loader.sampler.set_epoch(epoch)
                for batch in loader:
                    loss = task.training_step(model, move_to(batch, torch.device("cpu")))["loss"]
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

        sides[name] = train_epochs
    sides["cache"]()  # warm-up (allocations, Adam state)
    ctx.log(f"timing {s.rounds} interleaved rounds: training epochs decoded vs cached")
    t = interleave(s.rounds, sides)
    scale = steps["cache"] / steps["decoded"]
    figures.append(
        Figure(
            key="video_caption_train_cache_speedup",
            title="video-caption train steps/s, feature cache vs decoding + encoder per step (informational)",
            value=round(t.ratio("decoded", "cache", scale), 2),
            target=None,
            baseline=f"the same steps with data.cache_features=false: clips decoded (2 workers), "
            f"resnet18 on all {s.num_frames} frames of every clip",
            details={
                "batch_size": s.batch_size,
                "steps_per_round": steps,
                "cache_steps_per_s": round(steps["cache"] / t.median("cache"), 3),
                "decoded_steps_per_s": round(steps["decoded"] / t.median("decoded"), 3),
                **t.ratio_details("decoded", "cache", scale),
                "timings": t.summary(),
            },
        )
    )
    return figures
