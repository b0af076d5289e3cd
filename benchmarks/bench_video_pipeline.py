"""Figure 4: the video input pipeline's clips/s vs the frame encoder's clips/s on the same clips.

* candidate: ``DataLoader(VideoClipDataset(..., clip_transform=encoder preprocessing), batch_size=4,
  num_workers=2, persistent_workers=True)``: decode (PyAV) + segment sampling of T=8 frames + resize /
  crop / normalise to 224 px, timed over whole epochs after a warm-up epoch (workers already started);
* baseline: the encoder alone (``ImageEncoder``, pooled, under ``inference_mode``) on batches of the
  same clips already loaded: 4 clips x 8 frames = 32 images per forward.

Figure = loader clips/s / encoder clips/s (>= 1: two workers keep the encoder fed). Both sides are
timed separately, each with the whole machine; an informational figure runs them together (the same
persistent loader feeding the encoder, one epoch) as a fraction of the encoder-alone rate, which on a
2-core CPU shows what the decoding workers take from the encoder.

Clips (full mode): 8 generated UCF101-like clips, 320x240 MPEG-4 Part 2 in .avi at ~600 kb/s,
5-7 s at 25 or 30 fps (a textured, moving scene with sensor-like noise; written with PyAV as
``tests/video_fixtures.write_video`` does, plus a bit rate), and, when present, the real clips in
``../shared/data/real_videos`` (UCF101 and HMDB51 .avi, Kinetics .mp4), read in place.
Encoder: ResNet-18 (random init) at 224 px.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import REAL_VIDEOS_DIR, Context, Figure, interleave
from vision2seq.synthetic import write_video

VIDEO_SUFFIXES = (".avi", ".mp4")


@dataclass(frozen=True)
class Sizes:
    clips: int
    width: int
    height: int
    seconds: tuple[float, ...]
    fps: tuple[int, ...]
    num_frames: int
    encoder: str
    image_size: int | None
    batch_clips: int
    encoder_clips: int  # clips per encoder round
    real: bool
    rounds: int


FULL = Sizes(8, 320, 240, (5.0, 6.0, 7.0), (25, 30), 8, "resnet18", None, 4, 8, real=True, rounds=3)
QUICK = Sizes(2, 160, 120, (1.5,), (25,), 4, "resnet18", 64, 2, 2, real=False, rounds=1)


def textured_frames(num_frames: int, height: int, width: int, seed: int):
    """A moving two-colour wave pattern, a moving square and per-pixel noise (realistic bit rate)."""
    rng = np.random.default_rng(seed)
    x, y = np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    c1, c2 = rng.uniform(40, 215, 3).astype(np.float32), rng.uniform(40, 215, 3).astype(np.float32)
    (px, py), (vx, vy) = rng.uniform(20, 60, 2), rng.uniform(-3, 3, 2)
    noise = [rng.normal(0, 6, (height, width, 1)).astype(np.float32) for _ in range(7)]
    side = int(rng.integers(height // 8, height // 3))
    sx, sy = rng.uniform(0, width - side), rng.uniform(0, height - side)
    step = rng.uniform(-4, 4, 2)
    colour = rng.integers(0, 256, 3).astype(np.uint8)
    for t in range(num_frames):
        mix = 0.5 + 0.25 * np.sin((x[None, :] + vx * t) / px) + 0.25 * np.sin((y[:, None] + vy * t) / py)
        frame = np.clip(c2 + (c1 - c2) * mix[..., None] + noise[t % len(noise)], 0, 255).astype(np.uint8)
        left, top = int(sx + step[0] * t) % (width - side), int(sy + step[1] * t) % (height - side)
        frame[top : top + side, left : left + side] = colour
        yield frame


def make_clips(folder: Path, s: Sizes) -> list[Path]:
    paths = []
    for i in range(s.clips):
        seconds, fps = s.seconds[i % len(s.seconds)], s.fps[i % len(s.fps)]
        frames = textured_frames(round(seconds * fps), s.height, s.width, seed=i)
        path = folder / f"v_Synthetic_g{i:02d}_c01.avi"  # MPEG-4 Part 2 at 600 kb/s, as UCF101 ships
        paths.append(write_video(path, list(frames), fps, quality=None, bit_rate=600_000))
    return paths


def real_clips() -> list[Path]:
    if not REAL_VIDEOS_DIR.is_dir():
        return []
    return sorted(p for p in REAL_VIDEOS_DIR.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)


def run(ctx: Context) -> list[Figure]:
    from torch.utils.data import DataLoader

    from vision2seq.data.video.clips import VideoClipDataset
    from vision2seq.data.video.datasets import VideoSample
    from vision2seq.models.encoder import ImageEncoder

    s = QUICK if ctx.quick else FULL
    ctx.log(f"writing {s.clips} {s.width}x{s.height} MPEG-4 clips")
    synthetic = make_clips(ctx.workdir / "videos", s)
    real = real_clips() if s.real else []
    paths = synthetic + real
    torch.manual_seed(0)
    encoder = ImageEncoder(s.encoder, None, "pooled", image_size=s.image_size).eval()
    dataset = VideoClipDataset(
        [VideoSample(p, 0) for p in paths],
        s.num_frames,
        train=True,
        clip_transform=encoder.preprocessing.transform(),
    )

    held: list[torch.Tensor] = []
    epochs = DataLoader(dataset, batch_size=s.batch_clips, num_workers=2, persistent_workers=True)
    for frames, _ in epochs:  # warm-up epoch: starts the workers; keeps clips for the encoder side
        held.extend(frames)
    clips = torch.stack(held[: s.encoder_clips])  # (N, T, 3, H, W)
    encoder_batches = list(clips.split(s.batch_clips))

    def one_epoch() -> None:
        dataset.set_epoch(dataset.epoch + 1)
        for _ in epochs:
            pass

    @torch.inference_mode()
    def encode() -> None:
        for batch in encoder_batches:
            encoder(batch.flatten(0, 1))

    @torch.inference_mode()
    def together() -> None:
        dataset.set_epoch(dataset.epoch + 1)
        for frames, _ in epochs:
            encoder(frames.flatten(0, 1))

    encode()  # warm-up
    ctx.log(f"timing {s.rounds} interleaved rounds: loader ({len(paths)} clips), encoder, loader->encoder")
    t = interleave(s.rounds, {"loader": one_epoch, "encoder": encode, "together": together})
    loader_rate, encoder_rate = len(paths) / t.median("loader"), len(clips) / t.median("encoder")
    together_rate = len(paths) / t.median("together")
    # clips/s ratio = (encoder s/clip) / (loader s/clip)
    per_clip = len(paths) / len(clips)

    details = {
        "clips": {"synthetic": len(synthetic), "real": [p.name for p in real]},
        "synthetic_clip": f"{s.width}x{s.height} mpeg4 .avi, {list(s.seconds)} s at {list(s.fps)} fps",
        "synthetic_mb": round(sum(p.stat().st_size for p in synthetic) / 2**20, 2),
        "frames_per_clip": s.num_frames,
        "encoder": f"{s.encoder} (random init), {encoder.preprocessing.crop_size} px, pooled",
        "loader": f"batch {s.batch_clips} clips, num_workers=2, persistent workers, segment sampling",
        "loader_clips_per_s": round(loader_rate, 3),
        "encoder_clips_per_s": round(encoder_rate, 3),
        **t.ratio_details("encoder", "loader", per_clip),
        "timings": t.summary(),
    }
    return [
        Figure(
            key="video_loader_vs_encoder",
            title=f"video clips/s: decode+sample+transform (2 workers) / {s.encoder} encoder",
            value=round(t.ratio("encoder", "loader", per_clip), 2),
            target=1.0,
            baseline=f"{s.encoder} forward on the same clips (T={s.num_frames}), already loaded",
            details=details,
        ),
        Figure(
            key="video_loader_feeding_encoder",
            title="video clips/s with the loader feeding the encoder / encoder alone (informational)",
            value=round(t.ratio("encoder", "together", per_clip), 2),
            target=None,
            baseline="encoder alone on loaded clips (the figure above's baseline)",
            details={
                "together_clips_per_s": round(together_rate, 3),
                "encoder_clips_per_s": round(encoder_rate, 3),
                **t.ratio_details("encoder", "together", per_clip),
            },
        ),
    ]
