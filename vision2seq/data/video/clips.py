"""A torch Dataset of clips sampled from videos (`VideoClipDataset`), and `frames_to_clip`, the one
conversion of decoded frames into an encoder's input used by training, ``classify`` and streaming.

The clips come from the layout parsers of `vision2seq.data.video.datasets` (a `VideoList` or its samples).

Bad items: an item that cannot be decoded is its one-line error message (a ``str``) in place of the
item, never an exception out of ``__getitem__`` and never a silent drop; the consumer reports it
(``(index, message)`` pairs once an index is attached, see `vision2seq.data.images.collate_good`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from vision2seq.data.sampling import ClipSampling, SamplingMode
from vision2seq.data.video.datasets import VideoList, VideoSample
from vision2seq.data.video.reader import (
    DEFAULT_SPARSE_MIN_FRAMES,
    IndexSampler,
    VideoDecodeError,
    read_sampled_frames,
)

ClipTransform = Callable[[torch.Tensor], torch.Tensor]


def frames_to_clip(frames: Sequence[np.ndarray], transform: ClipTransform | None) -> torch.Tensor:
    """(H, W, 3) uint8 RGB frames -> ``transform`` of the (T, 3, H, W) uint8 clip, or [0, 1] floats.

    ``transform`` is a batched tensor transform (torchvision weights' ``transforms()`` accept one):
    the whole clip is resized in one call. Frames of different sizes (pushed one by one to a stream)
    go through the same transform one at a time, so every path gives the same pixels.
    """
    if len({f.shape for f in frames}) == 1:
        clip = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)  # (T, 3, H, W); stack copies
        return clip.float().div_(255) if transform is None else transform(clip)
    if transform is None:
        raise ValueError("frames of different sizes need a transform that resizes them")
    return torch.cat([transform(torch.from_numpy(np.array(f)).permute(2, 0, 1)[None]) for f in frames])


def configured_clips(
    data: Any, samples: VideoList | Sequence[VideoSample], clip_transform: ClipTransform, **kwargs: Any
) -> VideoClipDataset:
    """``samples`` sampled as a config's ``data`` section says (``num_frames``, ``sampling``,
    ``frame_stride``): the one place training, evaluation, the cache and inference build clips from a
    config; ``kwargs``: ``train``, ``num_clips``, ``seed``, ``frames_of``."""
    return VideoClipDataset(
        samples,
        data.num_frames,
        mode=data.sampling,
        stride=data.frame_stride,
        clip_transform=clip_transform,
        **kwargs,
    )


class VideoClipDataset(Dataset):
    """Clips of ``num_frames`` frames sampled from videos, as ``(frames, label)`` pairs.

    ``frames`` is a float tensor (T, C, H, W), or (num_clips, T, C, H, W) with ``num_clips > 1``
    (deterministic multi-clip evaluation), or (F, C, H, W) for explicit ``frames_of`` indices. A video
    that cannot be decoded is its one-line error message instead (see the module doc).

    Training draws are random but reproducible: each item's generator is seeded from ``(seed, epoch,
    index)``, so results do not depend on which worker loads
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
        frames_of: Explicit frame indices per decodable frame count instead of sampling (the feature
            cache's `vision2seq.data.sampling.FrameGrid`); the item is then all those frames.
        sparse_min_frames: See `vision2seq.data.video.reader.read_sampled_frames`.
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
        clip_transform: ClipTransform | None = None,
        seed: int = 0,
        frames_of: IndexSampler | None = None,
        sparse_min_frames: int | None = DEFAULT_SPARSE_MIN_FRAMES,
    ) -> None:
        self.sampling = ClipSampling(num_frames, mode, stride, num_clips)  # checks the values
        if train and num_clips > 1:
            raise ValueError("multi-clip sampling is for evaluation; use num_clips=1 with train=True")
        if transform is not None and clip_transform is not None:
            raise ValueError("pass transform or clip_transform, not both")
        self.samples = list(samples.samples if isinstance(samples, VideoList) else samples)
        self.num_frames, self.mode, self.stride = num_frames, mode, stride
        self.train, self.num_clips = train, num_clips
        self.transform, self.clip_transform = transform, clip_transform
        self.seed, self.epoch = seed, 0
        self.frames_of, self.sparse_min_frames = frames_of, sparse_min_frames

    def set_epoch(self, epoch: int) -> None:
        """Use the training draws of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def index_sampler(self, index: int) -> IndexSampler:
        """The frame sampler of item ``index`` for the current epoch (flat indices for multi-clip)."""
        if self.frames_of is not None:
            return self.frames_of
        if not self.train:
            return lambda n: [i for clip in self.sampling.eval_indices(n) for i in clip]
        entropy = [self.seed, self.epoch, index]
        # A fresh generator per call: the decoder may evaluate the sampler for several frame counts.
        return lambda n: self.sampling.train_indices(n, np.random.default_rng(entropy))

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
        if self.num_clips > 1 and self.frames_of is None:
            frames = frames.reshape(self.num_clips, self.num_frames, *frames.shape[1:])
        return frames, sample.label

    def _to_tensor(self, frames: list[np.ndarray]) -> torch.Tensor:
        if self.transform is not None:
            return torch.stack([self.transform(Image.fromarray(frame)) for frame in frames])
        return frames_to_clip(frames, self.clip_transform)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | str:
        try:
            return self.load(index)
        except VideoDecodeError as err:
            return str(err)
