"""Videos stored as folders of extracted frames (``frame000001.jpg``, ``img_00001.png``, ...).

Frames are the folder's image files in natural order; each goes through
`vision2seq.data.images.load_image` (known formats only, its one-line errors) after its header is
checked against the video frame-size limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from vision2seq.data.images import IMAGE_FORMATS, ImageReadError, load_image
from vision2seq.data.inputs import FRAME_SUFFIXES
from vision2seq.data.video import shared as video_types
from vision2seq.data.video.shared import IndexSampler, SampledFrames, VideoDecodeError, check_frame_size

# Frame folders carry no timestamps; their frames are reported 1/25 s apart.
FOLDER_FPS = 25.0


def _natural_key(name: str) -> list[int | str]:
    # "frame10.jpg" after "frame9.jpg": compare digit runs as numbers.
    return [int(part) if part.isdecimal() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frame_files(folder: Path | str) -> list[Path]:
    """Image files of a frame folder in natural order (``img_2.jpg`` before ``img_10.jpg``).

    Raises:
        VideoDecodeError: the folder cannot be listed or holds no image files.
    """
    folder = Path(folder)
    try:
        names = [
            p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")
        ]
    except OSError as exc:
        raise VideoDecodeError(folder, f"cannot list frame folder ({exc.strerror or exc})") from None
    names = [p for p in names if not p.name.startswith(".")]
    if not names:
        raise VideoDecodeError(folder, f"frame folder holds no images ({', '.join(sorted(FRAME_SUFFIXES))})")
    return sorted(names, key=lambda p: _natural_key(p.name))


def load_frame(path: Path) -> np.ndarray:
    """One frame image as (H, W, 3) uint8 RGB, its size checked from the header before decoding.

    Raises:
        VideoDecodeError: unreadable image or frame over the size limit.
    """
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as header:
            width, height = header.size
    except Exception:
        width = height = 0
    check_frame_size(path, width, height, video_types.MAX_FRAME_PIXELS)
    try:
        return np.asarray(load_image(path))
    except ImageReadError as err:
        reason = str(err).removeprefix(f"{path}: ")
        raise VideoDecodeError(path, f"not a readable image ({reason})") from None


def read_folder(folder: Path, sampler: IndexSampler) -> SampledFrames:
    """The frames ``sampler(number of images)`` picks (indices past the end give the last frame)."""
    files = list_frame_files(folder)
    indices = [int(i) for i in sampler(len(files))]
    clamped = [min(i, len(files) - 1) for i in indices]
    loaded = {i: load_frame(files[i]) for i in set(clamped)}
    return SampledFrames([loaded[i] for i in clamped], indices, len(files))


def iter_folder(folder: Path, step: int) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(index, index / FOLDER_FPS, frame)`` for every ``step``-th image, loaded one at a time."""
    files = list_frame_files(folder)
    for index in range(0, len(files), step):
        yield index, index / FOLDER_FPS, load_frame(files[index])
