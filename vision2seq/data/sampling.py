"""Which frames of a video a clip uses: pure functions from a frame count to frame indices.

Two schemes, as in the action-recognition literature:

* **segment** (TSN): split the video into ``T`` equal segments and take one frame from each, so a clip
  always spans the whole video whatever its length. Training takes a random frame per segment;
  evaluation takes each segment's centre.
* **dense**: ``T`` consecutive frames ``stride`` apart (a short window). Training puts the window at a
  random start; evaluation centres it.

Every sampler returns exactly the requested number of indices, each ``0 <= i < num_frames``, in
non-decreasing order; videos too short for the request are padded by repeating frames. Given the same
``rng`` state the result is the same.

``num_frames`` must be the number of frames that actually decode, not the container's claim (real
.avi files often claim one frame more); `vision2seq.data.video.read_sampled_frames` takes a sampler and
applies it to the true count.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

SamplingMode = Literal["segment", "dense"]
SAMPLING_MODES: tuple[str, ...] = ("segment", "dense")


def _check_counts(num_frames: int, count: int, what: str) -> None:
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if count <= 0:
        raise ValueError(f"{what} must be positive, got {count}")


def _generator(random: bool, rng: np.random.Generator | None) -> np.random.Generator | None:
    # Without an rng, training draws are deliberately irreproducible (fresh OS entropy).
    if not random:
        return None
    return rng if rng is not None else np.random.default_rng()


def _segment_bounds(num_frames: int, num_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each of ``num_segments`` near-equal segments of ``[0, num_frames)``.

    Integer arithmetic, so every segment is non-empty when ``num_frames >= num_segments``.
    """
    edges = np.arange(num_segments + 1, dtype=np.int64) * num_frames // num_segments
    return edges[:-1], np.diff(edges)


def _padded_spread(num_frames: int, count: int) -> list[int]:
    """``count`` indices spread evenly over a video shorter than ``count``: each frame repeated."""
    return [i * num_frames // count for i in range(count)]


def _segment_at(num_frames: int, num_segments: int, fraction: float) -> list[int]:
    """The frame at relative position ``fraction`` (in ``[0, 1)``) inside every segment."""
    starts, lengths = _segment_bounds(num_frames, num_segments)
    return (starts + np.floor(fraction * lengths).astype(np.int64)).tolist()


def sample_segment_indices(
    num_frames: int, num_segments: int, *, random: bool = False, rng: np.random.Generator | None = None
) -> list[int]:
    """TSN sampling: one frame from each of ``num_segments`` equal segments of the video.

    Args:
        num_frames: Frames that actually decode.
        num_segments: Frames to return (the clip length ``T``).
        random: Training: a uniformly random frame inside each segment. Otherwise each segment's centre.
        rng: Source of the random draws (ignored when ``random`` is false).

    Returns:
        ``num_segments`` sorted indices; a video with fewer frames repeats them evenly.

    Raises:
        ValueError: ``num_frames`` or ``num_segments`` is not positive.
    """
    _check_counts(num_frames, num_segments, "num_segments")
    if num_frames < num_segments:
        return _padded_spread(num_frames, num_segments)
    generator = _generator(random, rng)
    if generator is None:
        return _segment_at(num_frames, num_segments, 0.5)
    starts, lengths = _segment_bounds(num_frames, num_segments)
    return (starts + generator.integers(0, lengths)).tolist()


def _dense_window(num_frames: int, num_frames_out: int, stride: int, start: int) -> list[int]:
    # Past the end (a video shorter than the window) the last frame repeats: sorted, unlike looping.
    offsets = start + stride * np.arange(num_frames_out, dtype=np.int64)
    return np.minimum(offsets, num_frames - 1).tolist()


def _dense_max_start(num_frames: int, num_frames_out: int, stride: int) -> int:
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    span = (num_frames_out - 1) * stride + 1
    return max(num_frames - span, 0)


def sample_dense_indices(
    num_frames: int,
    num_frames_out: int,
    stride: int = 1,
    *,
    random: bool = False,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """A window of ``num_frames_out`` frames ``stride`` apart.

    Args:
        num_frames: Frames that actually decode.
        num_frames_out: Frames to return (the clip length ``T``).
        stride: Step between consecutive frames of the window.
        random: Training: the window starts anywhere it fits. Otherwise it is centred.
        rng: Source of the random draw (ignored when ``random`` is false).

    Returns:
        ``num_frames_out`` sorted indices; when the window does not fit, it starts at frame 0 and the
        last frame repeats.

    Raises:
        ValueError: a count or the stride is not positive.
    """
    _check_counts(num_frames, num_frames_out, "num_frames_out")
    max_start = _dense_max_start(num_frames, num_frames_out, stride)
    generator = _generator(random, rng)
    start = int(generator.integers(0, max_start + 1)) if generator is not None else (max_start + 1) // 2
    return _dense_window(num_frames, num_frames_out, stride, start)


def sample_multi_clip_indices(
    num_frames: int,
    num_clips: int,
    num_frames_out: int,
    mode: SamplingMode = "segment",
    stride: int = 1,
) -> list[list[int]]:
    """Deterministic test-time sampling of ``num_clips`` clips spread evenly over the video.

    Clip ``c`` sits at relative position ``(c + 0.5) / num_clips``: in segment mode that is the offset
    inside every segment, in dense mode the window start between the first and the last possible one.
    With ``num_clips == 1`` this equals the evaluation (centre) sampling of the single-clip samplers.

    Args:
        num_frames: Frames that actually decode.
        num_clips: Clips to return.
        num_frames_out: Frames per clip.
        mode: ``"segment"`` or ``"dense"``.
        stride: Dense mode's step between frames.

    Returns:
        ``num_clips`` lists of ``num_frames_out`` sorted indices, clips ordered by position.

    Raises:
        ValueError: a count is not positive or the mode is unknown.
    """
    _check_counts(num_frames, num_frames_out, "num_frames_out")
    if num_clips <= 0:
        raise ValueError(f"num_clips must be positive, got {num_clips}")
    fractions = [(2 * c + 1) / (2 * num_clips) for c in range(num_clips)]
    if mode == "segment":
        if num_frames < num_frames_out:
            return [_padded_spread(num_frames, num_frames_out) for _ in fractions]
        return [_segment_at(num_frames, num_frames_out, f) for f in fractions]
    if mode == "dense":
        max_start = _dense_max_start(num_frames, num_frames_out, stride)
        starts = [int(f * (max_start + 1)) for f in fractions]
        return [_dense_window(num_frames, num_frames_out, stride, s) for s in starts]
    raise ValueError(f"unknown sampling mode {mode!r}; expected one of {SAMPLING_MODES}")


def sample_clip_indices(
    num_frames: int,
    num_frames_out: int,
    mode: SamplingMode = "segment",
    stride: int = 1,
    *,
    random: bool = False,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """One clip with either scheme; see `sample_segment_indices` and `sample_dense_indices`.

    Raises:
        ValueError: a count is not positive or the mode is unknown.
    """
    if mode == "segment":
        return sample_segment_indices(num_frames, num_frames_out, random=random, rng=rng)
    if mode == "dense":
        return sample_dense_indices(num_frames, num_frames_out, stride, random=random, rng=rng)
    raise ValueError(f"unknown sampling mode {mode!r}; expected one of {SAMPLING_MODES}")
