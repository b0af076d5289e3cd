"""Video-classification data for the training loop: dataset layout from the config, the per-frame
feature cache for a frozen encoder, and the loaders.

With a frozen encoder each video's features are cached for the frames of a
`vision2seq.data.sampling.FrameGrid` (evenly spread clips that include the evaluation clips, at most
about ``data.cache_frames`` frames). Evaluation then reads exactly the frames ``classify`` decodes, and
training draws its clips from the grid with the real spacing (``frame_stride``), so epochs never decode
video or run the CNN; the trade-off is that training jitter is limited to the grid's positions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vision2seq.config import ConfigError, VideoConfig
from vision2seq.data.features import (
    FeatureStore,
    cached_features,
    default_cache_root,
    files_fingerprint,
    module_fingerprint,
)
from vision2seq.data.images import collate_good
from vision2seq.data.samplers import EpochSampler, ShardSampler, loader_options, lone_last_batch
from vision2seq.data.sampling import ClipSampling, FrameGrid
from vision2seq.data.video.clips import VideoClipDataset, configured_clips
from vision2seq.data.video.datasets import (
    VideoList,
    VideoSample,
    carve_validation,
    parse_class_folders,
    parse_csv,
    parse_hmdb51,
    parse_ucf101,
)
from vision2seq.engine.distributed import SINGLE, DistContext
from vision2seq.errors import UserError
from vision2seq.models.encoder import ImageEncoder
from vision2seq.resources import worker_count

SPLITS = ("train", "val", "test")


def detect_format(config: VideoConfig) -> str:
    """The dataset layout: the configured one, or guessed from ``data.annotations``."""
    d = config.data
    if d.format != "auto":
        return d.format
    if d.annotations is None:
        return "folders"
    ann = Path(d.annotations)
    if not ann.exists():
        raise UserError(f"{ann}: data.annotations does not exist (check the path)")
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


def _no_split(source: object, subset: str, available: list[str]) -> ConfigError:
    return ConfigError(
        f"{source}: this dataset has no {subset!r} split (available: {', '.join(available)}); "
        f"use --split {available[-1]}"
    )


def _held_out(train: VideoList, config: VideoConfig, subset: str, source: object) -> VideoList:
    """``train`` or ``val`` of a list whose validation part is carved out of it."""
    d = config.data
    kept, val = carve_validation(train, d.val_fraction, config.seed)
    if subset == "val" and not val.samples:
        raise ConfigError(f"{source}: {_no_val_advice(train, d.val_fraction)}")
    return val if subset == "val" else kept


def _no_val_advice(train: VideoList, val_fraction: float) -> str:
    """Why carving validation out of ``train`` left nothing, and the fix that works."""
    groups = {s.group for s in train.samples}
    if len(train.samples) > 1 and len(groups) == 1 and None not in groups:
        # Whole groups go to one side, and the last group always trains: no fraction can help.
        return (
            f"all {len(train.samples)} clips are in one group ({next(iter(groups))!r}: clips of a group "
            "stay on one side of the split, so no data.val_fraction leaves any for validation); add clips "
            "of other groups, or give a validation list (data.val_annotations)"
        )
    return f"data.val_fraction={val_fraction} leaves no validation clips; raise it (e.g. 0.2)"


def _once(memo: dict[str, Any], key: str, parse: Callable[[], VideoList]) -> VideoList:
    """Parse a list once per `load_video_lists` call (so missing clips are reported once)."""
    if key not in memo:
        memo[key] = parse()
    return memo[key]


def _csv_list(config: VideoConfig, subset: str, memo: dict[str, Any]) -> VideoList:
    d = config.data
    if d.annotations is None:
        raise ConfigError("data.annotations: a CSV list is needed for data.format=csv")
    full = _once(memo, "csv", lambda: parse_csv(d.videos, d.annotations, skip_missing=d.skip_missing))
    tagged = bool(full.samples) and all(s.split is not None for s in full.samples)

    def rows(names: tuple[str, ...]) -> VideoList:
        return VideoList([s for s in full.samples if s.split in names], full.class_names)

    train = rows(_CSV_NAMES["train"]) if tagged else full
    if subset == "test":
        test = rows(_CSV_NAMES["test"]) if tagged else VideoList([], full.class_names)
        if not test.samples:
            raise _no_split(d.annotations, "test", ["train", "val"])
        return test
    if d.val_annotations is not None:
        if subset == "train":
            return train
        return parse_csv(
            d.videos, d.val_annotations, class_names=full.class_names, skip_missing=d.skip_missing
        )
    val = rows(_CSV_NAMES["val"]) if tagged else VideoList([], full.class_names)
    if val.samples:  # the list's own validation rows
        return val if subset == "val" else train
    return _held_out(train, config, subset, d.annotations)


# Split-column values (lower-cased) of each split in CSV lists; rows with other values are unused.
_CSV_NAMES = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test",)}


def load_video_lists(config: VideoConfig, subsets: Sequence[str]) -> list[VideoList]:
    """`load_video_list` for several splits, reading each list file once."""
    memo: dict[str, Any] = {}
    return [_load(config, subset, memo) for subset in subsets]


def load_video_list(config: VideoConfig, subset: str) -> VideoList:
    """The clips of split ``subset``: ``train``, ``val`` (model selection) or ``test``.

    Validation never uses a test list: UCF101 and HMDB51 (official train/test lists) and CSV lists
    without validation rows or ``data.val_annotations`` carve it out of the training clips (seeded by
    ``seed``, ``data.val_fraction`` of them, group-aware: clips of one UCF101 ``_gXX_`` group or one
    HMDB51 source movie stay on one side). A CSV split column is honoured (``train``/``val``/``test``
    rows). Folder-per-class data and CSV lists without test rows have no ``test`` split.

    Raises:
        ConfigError: an unknown split name, or a split this dataset does not have (the message lists
            the available ones).
        UserError: unreadable or malformed lists.
    """
    return _load(config, subset, {})


def _load(config: VideoConfig, subset: str, memo: dict[str, Any]) -> VideoList:
    if subset not in SPLITS:
        raise ConfigError(f"unknown split {subset!r}; choose one of {', '.join(SPLITS)}")
    d = config.data
    fmt = detect_format(config)
    if fmt in ("ucf101", "hmdb51"):
        parse = parse_ucf101 if fmt == "ucf101" else parse_hmdb51
        official = "test" if subset == "test" else "train"
        videos = _once(
            memo,
            official,
            lambda: parse(d.videos, d.annotations, d.split, official, skip_missing=d.skip_missing),
        )
        return videos if subset == "test" else _held_out(videos, config, subset, d.annotations)
    if fmt == "folders":
        if subset == "test":
            raise _no_split(d.videos, "test", ["train", "val"])
        train = _once(memo, "all", lambda: parse_class_folders(d.videos, "all"))
        return _held_out(train, config, subset, d.videos)
    return _csv_list(config, subset, memo)


class IndexedClips(Dataset):
    """``(index, frames)``, or ``(index, error line)`` for an unreadable video (the cache builder's and
    ``classify``'s items, batched by `vision2seq.data.images.collate_good`)."""

    def __init__(self, clips: VideoClipDataset) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | str]:
        item = self.clips[index]
        return index, item if isinstance(item, str) else item[0]


class CachedClips(Dataset):
    """Clips as feature rows picked from each video's cached `FrameGrid` (no decoding, no CNN)."""

    def __init__(
        self, store: FeatureStore, samples: list[VideoSample], grid: FrameGrid, train: bool, seed: int
    ) -> None:
        self.store, self.grid, self.train, self.seed, self.epoch = store, grid, train, seed, 0
        self.samples = [s for s in samples if str(s.path) not in store.failed]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        rows = self.store[self.store.rows[str(sample.path)]]  # (grid.size, D)
        if self.train:
            picked = self.grid.train_rows(np.random.default_rng([self.seed, self.epoch, index]))
            features = rows[torch.tensor(picked)]  # (T, D)
        else:
            features = rows[torch.tensor(self.grid.eval_rows())]  # (N, T, D): the evaluation clips
            if features.shape[0] == 1:
                features = features[0]  # one clip: (T, D), as decoded clips come
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
        item = self.clips[index]
        if isinstance(item, str):
            return item  # reported by the training loop, which skips the clip
        return {"frames": item[0], "label": item[1]}


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


def _cache_fingerprint(encoder: ImageEncoder, grid: FrameGrid, paths: list[Path]) -> str:
    return module_fingerprint(encoder, "video", grid.key(), encoder.preprocessing, files_fingerprint(paths))


def _cached_paths(videos: list[VideoList]) -> list[Path]:
    """The videos a cache over these lists holds: each once, in a fixed order."""
    return sorted({s.path for v in videos for s in v.samples}, key=str)


def _training_cache(
    config: VideoConfig, encoder: ImageEncoder, grid: FrameGrid, root: Path, wanted: list[Path]
) -> tuple[str, list[Path]] | None:
    """The fingerprint and paths of the cache training built (train + val clips), when it exists and
    holds every ``wanted`` clip: evaluating after training then reuses it instead of re-encoding."""
    quiet = logging.getLogger("vision2seq.data.video.datasets")
    was, quiet.disabled = quiet.disabled, True  # the training run already reported missing clips
    try:
        paths = _cached_paths(load_video_lists(config, ["train", "val"]))
    except UserError:
        return None  # e.g. training clips moved since: no training cache to find
    finally:
        quiet.disabled = was
    if not set(wanted) <= set(paths):
        return None
    fingerprint = _cache_fingerprint(encoder, grid, paths)
    return (fingerprint, paths) if FeatureStore.is_complete(root / fingerprint[:24]) else None


def clip_datasets(
    config: VideoConfig,
    encoder: ImageEncoder,
    subsets: list[tuple[VideoList, bool]],
    device: torch.device,
    dist: DistContext = SINGLE,
) -> list[Dataset]:
    """A dataset per ``(videos, train)`` pair: cached feature clips for a frozen encoder (one cache over
    all the videos, built once and sharded across ranks), else clips decoded in the loader workers.

    Both sample frames with the same `ClipSampling` (cached clips through its `FrameGrid`), so the
    evaluation clips are the same frames either way. Evaluation alone (no training subset) reuses
    the training run's cache when that one holds the clips.
    """
    d = config.data
    sampling = ClipSampling.from_config(d)
    transform = encoder.preprocessing.transform()
    if not (encoder.frozen and d.cache_features):
        return [
            DecodedClips(
                configured_clips(
                    d,
                    videos,
                    transform,
                    train=train,
                    num_clips=1 if train else d.test_clips,
                    seed=config.seed,
                )
            )
            for videos, train in subsets
        ]
    grid = FrameGrid.for_cache(sampling, d.cache_frames)
    root = (Path(d.cache_dir) if d.cache_dir else default_cache_root()) / "video_features"
    paths = _cached_paths([videos for videos, _ in subsets])
    training = any(train for _, train in subsets)
    reused = None if training else _training_cache(config, encoder, grid, root, paths)
    fingerprint, paths = reused or (_cache_fingerprint(encoder, grid, paths), paths)
    frames = configured_clips(d, [VideoSample(p, -1) for p in paths], transform, frames_of=grid.frame_indices)
    encoder.to(device).eval()

    def encode(clips: torch.Tensor) -> torch.Tensor:  # (B, F, 3, H, W) -> (B, F, D)
        features = encoder(clips.flatten(0, 1).to(device))
        return features.reshape(*clips.shape[:2], -1)

    store = cached_features(
        root,
        fingerprint,
        [str(p) for p in paths],
        IndexedClips(frames),
        collate_good,
        encode,
        (grid.size, encoder.feature_dim),
        batch_size=max(1, config.train.batch_size // 4),
        num_workers=worker_count(config.train.num_workers),
        dist=dist,
    )
    return [CachedClips(store, videos.samples, grid, train, config.seed) for videos, train in subsets]


def make_loader(
    dataset: Dataset,
    config: VideoConfig,
    train: bool,
    device: torch.device,
    dist: DistContext = SINGLE,
    collate: Callable[[list[Any]], Any] = collate_clips,
    cached: bool | None = None,
) -> DataLoader:
    """Training: seeded per-epoch shuffling sharded across ranks; evaluation: this rank's shard, in order.

    ``cached``: the items are cache reads (default: ``dataset`` is ``CachedClips``), small reads from disk
    that worker processes would only slow down.
    """
    cached = isinstance(dataset, CachedClips) if cached is None else cached
    workers = 0 if cached else worker_count(config.train.num_workers)
    drop_last = False
    if train:
        sampler = EpochSampler(len(dataset), config.seed, dist.rank, dist.world_size, dataset=dataset)
        # A trained encoder's batch norm sees batch x frames images: one clip of one frame is one image.
        one_image = config.data.num_frames == 1 and config.model.encoder.trainable() is not None
        drop_last = one_image and lone_last_batch(len(dataset), config.train.batch_size, dist.world_size)
    else:
        sampler = ShardSampler(len(dataset), dist.rank, dist.world_size)
    return DataLoader(
        dataset,
        batch_size=config.train.batch_size,
        drop_last=drop_last,
        num_workers=workers,
        sampler=sampler,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(config.seed),  # keeps the global RNG for the model
        **loader_options(config.train, dataset, workers, device),
    )


def build_video_data(
    config: VideoConfig, encoder: ImageEncoder, device: torch.device, dist: DistContext = SINGLE
) -> VideoData:
    """Training and validation loaders plus the class names."""
    train_list, val_list = load_video_lists(config, ["train", "val"])
    if not train_list.samples:
        raise UserError(f"{config.data.videos}: no training clips found")
    train, val = clip_datasets(config, encoder, [(train_list, True), (val_list, False)], device, dist)
    return VideoData(
        train_list.class_names,
        make_loader(train, config, True, device, dist),
        make_loader(val, config, False, device, dist),
    )
