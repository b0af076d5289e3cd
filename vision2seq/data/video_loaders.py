"""Video-classification data for the training loop: dataset layout from the config, the per-frame
feature cache for a frozen encoder, and the loaders.

With a frozen encoder each video's features are cached for ``data.cache_frames`` frames spread evenly
over it (the centres of that many segments), as a ``(cache_frames, D)`` row. Training then samples
``num_frames`` of those rows (TSN segments at random, or a dense run) and evaluation their centres, so
epochs never decode video or run the CNN; temporal jitter is limited to the cached frame grid.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vision2seq.config import VideoConfig
from vision2seq.data.features import (
    FeatureStore,
    cached_features,
    default_cache_root,
    files_fingerprint,
    module_fingerprint,
)
from vision2seq.data.images import collate_good
from vision2seq.data.samplers import EpochSampler, ShardSampler, loader_options
from vision2seq.data.sampling import sample_clip_indices, sample_multi_clip_indices
from vision2seq.data.video import VideoDecodeError
from vision2seq.data.video_clips import VideoClipDataset
from vision2seq.data.video_datasets import (
    VideoList,
    VideoSample,
    parse_class_folders,
    parse_csv,
    parse_hmdb51,
    parse_ucf101,
)
from vision2seq.distributed import SINGLE, DistContext
from vision2seq.errors import UserError
from vision2seq.models.encoder import ImageEncoder
from vision2seq.resources import worker_count

HELD_OUT = ("val", "test")


def detect_format(config: VideoConfig) -> str:
    """The dataset layout: the configured one, or guessed from ``data.annotations``."""
    d = config.data
    if d.format != "auto":
        return d.format
    if d.annotations is None:
        return "folders"
    ann = Path(d.annotations)
    if ann.is_file() or ann.suffix.lower() in (".csv", ".txt"):
        return "csv"
    if (ann / "classInd.txt").is_file():
        return "ucf101"
    if any(ann.glob("*_test_split*.txt")):
        return "hmdb51"
    raise UserError(
        f"{ann}: data.annotations is neither a CSV list nor a folder with UCF101 classInd.txt "
        "or HMDB51 *_test_split1.txt files"
    )


def load_video_list(config: VideoConfig, subset: str) -> VideoList:
    """The clips of ``subset`` (``train``, or ``val``/``test`` for the held-out part)."""
    d = config.data
    fmt = detect_format(config)
    held_out = subset in HELD_OUT
    if fmt == "ucf101":
        return parse_ucf101(
            d.videos, d.annotations, d.split, "test" if held_out else "train", skip_missing=d.skip_missing
        )
    if fmt == "hmdb51":
        return parse_hmdb51(
            d.videos, d.annotations, d.split, "test" if held_out else "train", skip_missing=d.skip_missing
        )
    if fmt == "folders":
        return parse_class_folders(d.videos, "val" if held_out else "train", d.val_fraction, config.seed)
    if d.annotations is None:
        raise UserError("data.annotations: a CSV list is needed for data.format=csv")
    full = parse_csv(d.videos, d.annotations, skip_missing=d.skip_missing)
    if d.val_annotations is not None:
        if not held_out:
            return full
        return parse_csv(
            d.videos, d.val_annotations, class_names=full.class_names, skip_missing=d.skip_missing
        )
    order = list(range(len(full.samples)))
    random.Random(config.seed).shuffle(order)
    n_val = round(len(order) * d.val_fraction)
    chosen = set(order[:n_val]) if held_out else set(order[n_val:])
    return VideoList([s for i, s in enumerate(full.samples) if i in chosen], full.class_names)


class IndexedClips(Dataset):
    """``(index, frames)`` for the cache builder, or ``(index, error line)`` for an unreadable video."""

    def __init__(self, clips: VideoClipDataset) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | str]:
        try:
            return index, self.clips.load(index)[0]
        except VideoDecodeError as exc:
            return index, str(exc)


class CachedClips(Dataset):
    """Clips as feature rows sampled from the cached frame grid of each video."""

    def __init__(
        self,
        store: FeatureStore,
        samples: list[VideoSample],
        num_frames: int,
        mode: str,
        train: bool,
        num_clips: int,
        seed: int,
    ) -> None:
        self.store, self.num_frames, self.mode = store, num_frames, mode
        self.train, self.num_clips, self.seed, self.epoch = train, num_clips, seed, 0
        self.samples = [s for s in samples if str(s.path) not in store.failed]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        grid = self.store[self.store.rows[str(sample.path)]]  # (F, D)
        n = grid.shape[0]
        if self.num_clips > 1:
            clips = sample_multi_clip_indices(n, self.num_clips, self.num_frames, self.mode, 1)
            features = grid[torch.tensor(clips)]  # (N, T, D)
        else:
            rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
            indices = sample_clip_indices(n, self.num_frames, self.mode, 1, random=self.train, rng=rng)
            features = grid[torch.tensor(indices)]  # (T, D)
        return {"features": features, "label": sample.label}


class DecodedClips(Dataset):
    """Clips decoded and transformed in the loader workers (fine-tuned encoder, or no cache)."""

    def __init__(self, clips: VideoClipDataset) -> None:
        self.clips = clips

    def set_epoch(self, epoch: int) -> None:
        self.clips.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any] | str:
        try:
            frames, label = self.clips.load(index)
        except VideoDecodeError as exc:
            return str(exc)  # reported by the training loop, which skips the clip
        return {"frames": frames, "label": label}


def collate_clips(items: list[dict[str, Any] | str]) -> dict[str, Any]:
    """Stack the clips that decoded; the others travel as ``errors``, for the loop to report."""
    batch: dict[str, Any] = {"errors": [it for it in items if isinstance(it, str)]}
    items = [it for it in items if not isinstance(it, str)]
    if items:
        batch.update({k: torch.stack([it[k] for it in items]) for k in items[0] if k != "label"})
        batch["label"] = torch.tensor([it["label"] for it in items])
    return batch


@dataclass
class VideoData:
    class_names: list[str]
    train: DataLoader
    val: DataLoader


def clip_datasets(
    config: VideoConfig,
    encoder: ImageEncoder,
    subsets: list[tuple[VideoList, bool]],
    device: torch.device,
    dist: DistContext = SINGLE,
) -> list[Dataset]:
    """A dataset per ``(videos, train)`` pair: cached feature clips for a frozen encoder (one cache over
    all the videos, built once and sharded across ranks), else clips decoded in the loader workers."""
    d = config.data
    transform = encoder.preprocessing.transform()
    if not (encoder.frozen and d.cache_features):
        return [
            DecodedClips(
                VideoClipDataset(
                    videos,
                    d.num_frames,
                    mode=d.sampling,
                    stride=d.frame_stride,
                    train=train,
                    num_clips=1 if train else d.test_clips,
                    clip_transform=transform,
                    seed=config.seed,
                )
            )
            for videos, train in subsets
        ]
    grid_frames = max(d.cache_frames, d.num_frames)
    samples = sorted(
        {s.path: s for videos, _ in subsets for s in videos.samples}.values(), key=lambda s: str(s.path)
    )
    grid = VideoClipDataset(samples, grid_frames, mode="segment", train=False, clip_transform=transform)
    paths = [s.path for s in samples]
    fingerprint = module_fingerprint(
        encoder, "video", grid_frames, encoder.preprocessing, files_fingerprint(paths)
    )
    root = Path(d.cache_dir) if d.cache_dir else default_cache_root()
    encoder.to(device).eval()

    def encode(frames: torch.Tensor) -> torch.Tensor:  # (B, F, 3, H, W) -> (B, F, D)
        features = encoder(frames.flatten(0, 1).to(device))
        return features.reshape(*frames.shape[:2], -1)

    store = cached_features(
        root / "video_features",
        fingerprint,
        [str(p) for p in paths],
        IndexedClips(grid),
        collate_good,
        encode,
        (grid_frames, encoder.feature_dim),
        batch_size=max(1, config.train.batch_size // 4),
        num_workers=worker_count(config.train.num_workers),
        dist=dist,
    )
    return [
        CachedClips(
            store, videos.samples, d.num_frames, d.sampling, train, 1 if train else d.test_clips, config.seed
        )
        for videos, train in subsets
    ]


def make_loader(
    dataset: Dataset, config: VideoConfig, train: bool, device: torch.device, dist: DistContext = SINGLE
) -> DataLoader:
    """Training: seeded per-epoch shuffling sharded across ranks; evaluation: this rank's shard, in order."""
    workers = 0 if isinstance(dataset, CachedClips) else worker_count(config.train.num_workers)
    if train:
        sampler = EpochSampler(len(dataset), config.seed, dist.rank, dist.world_size, dataset=dataset)
    else:
        sampler = ShardSampler(len(dataset), dist.rank, dist.world_size)
    return DataLoader(
        dataset,
        batch_size=config.train.batch_size,
        num_workers=workers,
        sampler=sampler,
        collate_fn=collate_clips,
        generator=torch.Generator().manual_seed(config.seed),  # keeps the global RNG for the model
        **loader_options(config.train, dataset, workers, device),
    )


def build_video_data(
    config: VideoConfig, encoder: ImageEncoder, device: torch.device, dist: DistContext = SINGLE
) -> VideoData:
    """Training and validation loaders plus the class names."""
    train_list = load_video_list(config, "train")
    val_list = load_video_list(config, "val")
    if not train_list.samples:
        raise UserError(f"{config.data.videos}: no training clips found")
    train, val = clip_datasets(config, encoder, [(train_list, True), (val_list, False)], device, dist)
    return VideoData(
        train_list.class_names,
        make_loader(train, config, True, device, dist),
        make_loader(val, config, False, device, dist),
    )
