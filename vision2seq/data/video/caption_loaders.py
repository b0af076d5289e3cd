"""Video-captioning data for the training loop: the records of a config's dataset, and loaders of
(clip, caption) pairs for training and of clips with their references for evaluation.

The clips go through video classification's frame pipeline (``video_loaders.clip_datasets``): the same
frame sampling, and with a frozen encoder the same per-frame feature cache, so clips are decoded and
encoded once whichever task reads them. Each clip's ``label`` there is the index of its caption record.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from vision2seq.config import (
    ConfigError,
    VideoCaptioningConfig,
    VideoConfig,
    VideoDataConfig,
    VideoModelConfig,
)
from vision2seq.data.caption_datasets import collate_captions
from vision2seq.data.captions import AnnotationError
from vision2seq.data.video.caption_records import (
    CaptionedClip,
    check_clips_exist,
    detect_format,
    parse_msrvtt,
    parse_msvd,
    select_splits,
)
from vision2seq.data.video.datasets import VideoList, VideoSample
from vision2seq.data.video.loaders import CachedClips, clip_datasets, make_loader
from vision2seq.data.vocab import Vocabulary
from vision2seq.engine.distributed import SINGLE, DistContext
from vision2seq.errors import UserError
from vision2seq.models.encoder import ImageEncoder

INPUTS = ("features", "frames")
"""Batch entries the model reads: cached per-frame features, or decoded frames."""


def frame_pipeline(config: VideoCaptioningConfig) -> VideoConfig:
    """The video-classification config of the same frames (sampling, cache, loader settings), which the
    shared clip loaders read."""
    d = config.data
    data = VideoDataConfig(
        videos=d.videos,
        num_frames=d.num_frames,
        sampling=d.sampling,
        frame_stride=d.frame_stride,
        test_clips=1,
        cache_features=d.cache_features,
        cache_frames=d.cache_frames,
        cache_dir=d.cache_dir,
        skip_missing=d.skip_missing,
    )
    model = VideoModelConfig(encoder=config.model.encoder)
    return VideoConfig(seed=config.seed, data=data, model=model, train=config.train)


def load_clips(config: VideoCaptioningConfig, splits: list[str]) -> list[CaptionedClip]:
    """The clips of ``splits`` with their captions; missing clips are one error (or one warning)."""
    d = config.data
    if not d.annotations:
        raise ConfigError("data.annotations: set the MSR-VTT JSON file or the MSVD AllVideoDescriptions.txt")
    fmt = detect_format(d.annotations) if d.format == "auto" else d.format
    if fmt == "msrvtt":
        files = [d.annotations] + ([d.test_annotations] if d.test_annotations else [])
        clips = parse_msrvtt(d.videos, files)
    else:
        if d.mapping is None:
            raise ConfigError(
                "data.mapping: MSVD needs the id mapping file (youtube_mapping.txt) whose ids define "
                "the train/val/test split"
            )
        clips = parse_msvd(d.videos, d.annotations, d.mapping, d.msvd_split)
    chosen = select_splits(clips, splits)
    if not chosen:
        present = sorted({c.split for c in clips})
        hint = ""
        if fmt == "msrvtt" and "test" in splits and d.test_annotations is None:
            hint = "; the official MSR-VTT test split is test_videodatainfo.json: set data.test_annotations"
        raise AnnotationError(
            f"{d.annotations}: no clips in split(s) {splits} (splits present: {present}){hint}"
        )
    return check_clips_exist(chosen, d.annotations, d.videos, d.skip_missing)


def _record_indices(clips: Dataset) -> list[int]:
    """The caption record of every item of a ``clip_datasets`` dataset (its samples' labels), unloaded."""
    samples = clips.samples if isinstance(clips, CachedClips) else clips.clips.samples  # type: ignore[attr-defined]
    return [s.label for s in samples]


def _inputs(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k in INPUTS}


class ClipCaptionPairs(Dataset):
    """Training items: one per (clip, reference caption) pair; unreadable clips are error lines."""

    def __init__(self, clips: Dataset, records: list[CaptionedClip], vocab: Vocabulary, max_len: int):
        self.clips = clips
        self.pairs = [
            (i, vocab.encode(tokens, max_len))
            for i, r in enumerate(_record_indices(clips))
            for tokens in records[r].tokens
        ]

    def set_epoch(self, epoch: int) -> None:
        self.clips.set_epoch(epoch)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any] | str:
        clip, caption = self.pairs[index]
        item = self.clips[clip]
        if isinstance(item, str):
            return item  # reported by the training loop, which skips the clip
        return {**_inputs(item), "caption": torch.tensor(caption)}


class CaptionedClips(Dataset):
    """Evaluation items: one per clip, with its key and raw reference captions."""

    def __init__(self, clips: Dataset, records: list[CaptionedClip]):
        self.clips = clips
        self.records = [records[r] for r in _record_indices(clips)]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any] | str:
        item = self.clips[index]
        if isinstance(item, str):
            return item
        record = self.records[index]
        return {**_inputs(item), "key": record.key, "references": record.captions}


collate_clip_captions = functools.partial(collate_captions, inputs=INPUTS)
"""Image captioning's collate over clips: ``(B, T, D)`` features or ``(B, T, 3, H, W)`` frames."""


def _as_video_list(records: list[CaptionedClip]) -> VideoList:
    return VideoList([VideoSample(r.path, i) for i, r in enumerate(records)], [])


def _loader(
    dataset: Dataset, config: VideoCaptioningConfig, train: bool, device: torch.device, dist: DistContext
) -> DataLoader:
    cached = isinstance(dataset.clips, CachedClips)  # type: ignore[attr-defined]
    return make_loader(dataset, config, train, device, dist, collate_clip_captions, cached)  # type: ignore[arg-type]


@dataclass
class VideoCaptionData:
    vocab: Vocabulary
    train: DataLoader
    val: DataLoader


def build_video_caption_data(
    config: VideoCaptioningConfig, encoder: ImageEncoder, device: torch.device, dist: DistContext = SINGLE
) -> VideoCaptionData:
    """Training and validation loaders, and the vocabulary of the training captions."""
    d = config.data
    clips = load_clips(config, [*d.train_splits, d.val_split])  # parsed and checked once
    train_records = select_splits(clips, d.train_splits)
    val_records = select_splits(clips, d.val_split)[: d.max_val_videos]
    if not train_records or not val_records:
        missing = d.train_splits if not train_records else d.val_split
        raise UserError(f"{d.annotations}: no clips in split(s) {missing}")
    vocab = Vocabulary.build((t for r in train_records for t in r.tokens), d.min_word_freq)
    train_clips, val_clips = clip_datasets(
        frame_pipeline(config),
        encoder,
        [(_as_video_list(train_records), True), (_as_video_list(val_records), False)],
        device,
        dist,
    )
    train: ClipCaptionPairs | CaptionedClips
    if config.train.objective == "scst":
        # SCST samples its own captions: one item per clip, with its key for the reward's references.
        train = CaptionedClips(train_clips, train_records)
    else:
        train = ClipCaptionPairs(train_clips, train_records, vocab, d.max_caption_len)
    val = CaptionedClips(val_clips, val_records)
    return VideoCaptionData(
        vocab, _loader(train, config, True, device, dist), _loader(val, config, False, device, dist)
    )


def build_eval_loader(
    config: VideoCaptioningConfig, encoder: ImageEncoder, device: torch.device, split: str
) -> DataLoader:
    """One item per clip of ``split`` with its references (features from the cache when frozen)."""
    records = load_clips(config, [split])
    [clips] = clip_datasets(frame_pipeline(config), encoder, [(_as_video_list(records), False)], device)
    return _loader(CaptionedClips(clips, records), config, False, device, SINGLE)
