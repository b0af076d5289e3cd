"""What the video readers share: the error type, the sampled-frames result and the frame-size limit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vision2seq.errors import UserError

IndexSampler = Callable[[int], Sequence[int]]

# Largest frame accepted, in pixels: 8K UHD (7680x4320) and every smaller format pass. A clip keeps
# its sampled frames in memory as RGB (3 bytes a pixel), so an 8000x8000 MJPEG of a few MB would
# otherwise take gigabytes; the size is checked from the stream header and on every decoded frame,
# before any conversion, and for frame folders from each image header before decoding.
MAX_FRAME_PIXELS = 7680 * 4320


class VideoDecodeError(UserError):
    """A video file or frame folder that cannot be read; the message names the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class SampledFrames(NamedTuple):
    """Frames picked by a sampler.

    Attributes:
        frames: (H, W, 3) uint8 RGB arrays, one per index.
        indices: The indices the sampler chose.
        num_frames: The frame count the sampler was given: the true count, except for sparse decoding
            of long videos, where it is the claimed count.
    """

    frames: list[np.ndarray]
    indices: list[int]
    num_frames: int


def check_frame_size(path: Path, width: int, height: int, limit: int | None = None) -> None:
    """Refuse frames larger than ``limit`` pixels (default `MAX_FRAME_PIXELS`).

    Raises:
        VideoDecodeError: naming the file, the frame size and the limit.
    """
    limit = MAX_FRAME_PIXELS if limit is None else limit
    if width * height > limit:
        raise VideoDecodeError(
            path,
            f"frames of {width}x{height} pixels exceed the limit of {limit} pixels per frame "
            "(8K UHD is 7680x4320); scale the video down first",
        )
