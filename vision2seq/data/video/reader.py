"""Read videos, given as files or as folders of extracted frames, into RGB frames.

The two sources live in their own modules (`vision2seq.data.video.container`: PyAV decoding of video
files; `vision2seq.data.video.frames`: frame folders); this module is the entry point the rest of the
package uses, and names a path's kind once. Frame indices always mean "the i-th frame that really
decodes", and a sampler is applied to that count (see `vision2seq.data.sampling`).

Untrusted files: only the containers of ``VIDEO_SUFFIXES`` are opened, only local files are read,
frame-folder images go through `vision2seq.data.images.load_image`, and frames larger than
``MAX_FRAME_PIXELS`` (8K UHD) are refused before they are decoded or converted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vision2seq.data.inputs import FRAME_SUFFIXES, VIDEO_SUFFIXES
from vision2seq.data.video.container import DEFAULT_SPARSE_MIN_FRAMES, iter_file, read_file
from vision2seq.data.video.frames import iter_folder, list_frame_files, read_folder
from vision2seq.data.video.shared import (
    MAX_FRAME_PIXELS,
    IndexSampler,
    SampledFrames,
    VideoDecodeError,
)

__all__ = [
    "DEFAULT_SPARSE_MIN_FRAMES",
    "FRAME_SUFFIXES",
    "MAX_FRAME_PIXELS",
    "VIDEO_SUFFIXES",
    "IndexSampler",
    "SampledFrames",
    "VideoDecodeError",
    "iter_frames",
    "list_frame_files",
    "read_sampled_frames",
]


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError as exc:  # a parent folder without search permission
        raise VideoDecodeError(path, (exc.strerror or "cannot access").lower()) from None


def _non_negative(sampler: IndexSampler) -> IndexSampler:
    def checked(num_frames: int) -> list[int]:
        indices = [int(i) for i in sampler(num_frames)]
        if any(i < 0 for i in indices):
            raise ValueError(f"sampler returned negative frame indices for {num_frames} frames: {indices}")
        return indices

    return checked


def read_sampled_frames(
    path: Path | str,
    sampler: IndexSampler,
    *,
    sparse_min_frames: int | None = DEFAULT_SPARSE_MIN_FRAMES,
    threads: int = 0,
) -> SampledFrames:
    """Decode the frames ``sampler(num_frames)`` picks, with ``num_frames`` the count that really decodes.

    Only the picked frames are kept and converted to RGB, so memory holds the clip, not the video.

    Args:
        path: A video file or a folder of extracted frames.
        sampler: Maps a frame count to frame indices (any order, repeats allowed). It may be called
            several times with nearby counts, so it must be a pure function of the count: derive any
            randomness from a fixed seed inside it (as `vision2seq.data.video.clips` does).
        sparse_min_frames: Claimed length from which long videos are sampled by seeking (see
            `vision2seq.data.video.container`); None always decodes sequentially.
        threads: Decoder threads; 0 lets FFmpeg choose.

    Returns:
        The frames, the indices and the count the sampler was given.

    Raises:
        VideoDecodeError: the file is missing, empty, unreadable, not a video, has no video stream,
            frames over ``MAX_FRAME_PIXELS``, or no frame decodes.
    """
    path = Path(path)
    sampler = _non_negative(sampler)
    if _is_folder(path):
        return read_folder(path, sampler)
    return read_file(path, sampler, sparse_min_frames, threads)


def iter_frames(
    path: Path | str, *, step: int = 1, threads: int = 0
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Stream ``(index, time in seconds, RGB frame)`` for every ``step``-th decoded frame, in order.

    Frames are converted as they are decoded, so memory stays flat however long the video is.
    Frame folders report ``index / 25`` as their time (they carry no timestamps).

    Raises:
        VideoDecodeError: as `read_sampled_frames`.
    """
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    path = Path(path)
    if _is_folder(path):
        return iter_folder(path, step)
    return iter_file(path, step, threads)
