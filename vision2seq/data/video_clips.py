"""A torch Dataset of clips sampled from videos (`VideoClipDataset`), and `collate_skip_none` to batch
the ``None`` items it returns for undecodable videos with ``skip_bad=True``.

The clips come from the layout parsers of `vision2seq.data.video_datasets` (a `VideoList` or its samples).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from vision2seq.data.sampling import (
    SAMPLING_MODES,
    SamplingMode,
    sample_clip_indices,
    sample_multi_clip_indices,
)
from vision2seq.data.video import (
    DEFAULT_SPARSE_MIN_FRAMES,
    IndexSampler,
    VideoDecodeError,
    read_sampled_frames,
)
from vision2seq.data.video_datasets import VideoList, VideoSample

logger = logging.getLogger(__name__)


def collate_skip_none(batch: list[Any]) -> Any:
    """`default_collate` without the ``None`` items a ``skip_bad`` dataset returns; None if none is left."""
    kept = [item for item in batch if item is not None]
    return default_collate(kept) if kept else None


class VideoClipDataset(Dataset):
    """Clips of ``num_frames`` frames sampled from videos, as ``(frames, label)`` pairs.

    ``frames`` is a float tensor (T, C, H, W), or (num_clips, T, C, H, W) with ``num_clips > 1``
    (deterministic multi-clip evaluation). Training draws are random but reproducible: each item's
    generator is seeded from ``(seed, epoch, index)``, so results do not depend on which worker loads
    the item. Call `set_epoch` before each epoch (workers copy the dataset when an epoch's iterator
    starts, so with ``persistent_workers=True`` they keep the epoch they started with).

    Args:
        samples: The clips (a `VideoList` or its ``samples``).
        num_frames: Frames per clip (T).
        mode: ``"segment"`` (TSN, spans the video) or ``"dense"`` (consecutive frames ``stride`` apart).
        stride: Dense mode's step between frames.
        train: Random sampling; otherwise centred.
        num_clips: Clips per video for evaluation (needs ``train=False``).
        transform: Per frame, PIL image -> (C, H, W) float tensor (e.g. a torchvision weights'
            ``transforms()``); it must treat every frame alike (no per-call random crops). Default:
            RGB scaled to [0, 1], which only batches if all videos share a size.
        clip_transform: Alternative to ``transform`` applied once per clip to the (T, C, H, W) uint8
            tensor; batched tensor transforms (torchvision weights' ``transforms()`` accept them)
            resize a whole clip in one call, which is faster than frame by frame.
        seed: Seed of the training draws.
        skip_bad: Return None for a video that cannot be decoded (logging why) instead of raising;
            batch with `collate_skip_none`.
        sparse_min_frames: See `vision2seq.data.video.read_sampled_frames`.
    """

    def __init__(
        self,
        samples: VideoList | Sequence[VideoSample],
        num_frames: int = 8,
        *,
        mode: SamplingMode = "segment",
        stride: int = 1,
        train: bool = False,
        num_clips: int = 1,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        clip_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 0,
        skip_bad: bool = False,
        sparse_min_frames: int | None = DEFAULT_SPARSE_MIN_FRAMES,
    ) -> None:
        if mode not in SAMPLING_MODES:
            raise ValueError(f"unknown sampling mode {mode!r}; expected one of {SAMPLING_MODES}")
        if num_frames <= 0 or num_clips <= 0 or stride <= 0:
            raise ValueError("num_frames, num_clips and stride must be positive")
        if train and num_clips > 1:
            raise ValueError("multi-clip sampling is for evaluation; use num_clips=1 with train=True")
        if transform is not None and clip_transform is not None:
            raise ValueError("pass transform or clip_transform, not both")
        self.samples = list(samples.samples if isinstance(samples, VideoList) else samples)
        self.num_frames, self.mode, self.stride = num_frames, mode, stride
        self.train, self.num_clips = train, num_clips
        self.transform, self.clip_transform = transform, clip_transform
        self.seed, self.epoch = seed, 0
        self.skip_bad, self.sparse_min_frames = skip_bad, sparse_min_frames

    def set_epoch(self, epoch: int) -> None:
        """Use the training draws of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def index_sampler(self, index: int) -> IndexSampler:
        """The frame sampler of item ``index`` for the current epoch (flat indices for multi-clip)."""
        if self.num_clips > 1:
            return lambda n: [
                i
                for clip in sample_multi_clip_indices(
                    n, self.num_clips, self.num_frames, self.mode, self.stride
                )
                for i in clip
            ]
        entropy = [self.seed, self.epoch, index]
        # A fresh generator per call: the decoder may evaluate the sampler for several frame counts.
        return lambda n: sample_clip_indices(
            n, self.num_frames, self.mode, self.stride, random=self.train, rng=np.random.default_rng(entropy)
        )

    def load(self, index: int) -> tuple[torch.Tensor, int]:
        """Decode and transform item ``index``.

        Raises:
            VideoDecodeError: the video cannot be decoded.
        """
        sample = self.samples[index]
        sampled = read_sampled_frames(
            sample.path, self.index_sampler(index), sparse_min_frames=self.sparse_min_frames
        )
        frames = self._to_tensor(sampled.frames)
        if self.num_clips > 1:
            frames = frames.reshape(self.num_clips, self.num_frames, *frames.shape[1:])
        return frames, sample.label

    def _to_tensor(self, frames: list[np.ndarray]) -> torch.Tensor:
        if self.transform is not None:
            return torch.stack([self.transform(Image.fromarray(frame)) for frame in frames])
        clip = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
        if self.clip_transform is not None:
            return self.clip_transform(clip)
        return clip.float().div_(255)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        try:
            return self.load(index)
        except VideoDecodeError as err:
            if not self.skip_bad:
                raise
            logger.warning("skipping clip %d: %s", index, err)
            return None
