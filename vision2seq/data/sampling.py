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
.avi files often claim one frame more); `vision2seq.data.video.reader.read_sampled_frames` takes a sampler and
applies it to the true count.

`ClipSampling` bundles the ``data`` settings into the one definition that raw-file training, evaluation,
``classify`` and the feature cache (`FrameGrid`: which frames the cache stores) all use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

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


def _segment_at(num_frames: int, num_segments: int, clip: int, num_clips: int) -> list[int]:
    """The frame at relative position ``(clip + 0.5) / num_clips`` inside every segment.

    Integer arithmetic (no float fraction), so clip ``c`` of ``N`` and clip ``c * m + (m - 1) / 2`` of
    ``N * m`` (``m`` odd) land on the same frames: the feature cache's grid relies on it.
    """
    starts, lengths = _segment_bounds(num_frames, num_segments)
    return (starts + (2 * clip + 1) * lengths // (2 * num_clips)).tolist()


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
        return _segment_at(num_frames, num_segments, 0, 1)
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
    if mode == "segment":
        if num_frames < num_frames_out:
            return [_padded_spread(num_frames, num_frames_out) for _ in range(num_clips)]
        return [_segment_at(num_frames, num_frames_out, c, num_clips) for c in range(num_clips)]
    if mode == "dense":
        max_start = _dense_max_start(num_frames, num_frames_out, stride)
        # Integer arithmetic, as in `_segment_at`: clip c of N starts at ((2c + 1) / 2N) (max_start + 1).
        starts = [(2 * c + 1) * (max_start + 1) // (2 * num_clips) for c in range(num_clips)]
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


# --- one sampling path for raw clips and cached features -----------------------------------------


@dataclass(frozen=True)
class ClipSampling:
    """The frames a clip uses, from the ``data`` settings: the one definition every path applies.

    Raw-file training, evaluation, ``classify`` and the feature cache (through `FrameGrid`) all take
    their frame indices from here, so one config yields the same frames and spacing everywhere.

    Attributes:
        num_frames: Frames per clip (``data.num_frames``, T).
        mode: ``"segment"`` or ``"dense"`` (``data.sampling``).
        stride: Dense mode's step between frames (``data.frame_stride``).
        test_clips: Clips per video at evaluation (``data.test_clips``, N).
    """

    num_frames: int
    mode: SamplingMode = "segment"
    stride: int = 1
    test_clips: int = 1

    def __post_init__(self) -> None:
        if self.mode not in SAMPLING_MODES:
            raise ValueError(f"unknown sampling mode {self.mode!r}; expected one of {SAMPLING_MODES}")
        if min(self.num_frames, self.stride, self.test_clips) <= 0:
            raise ValueError("num_frames, stride and test_clips must be positive")

    @classmethod
    def from_config(cls, data: Any) -> ClipSampling:
        """From a `vision2seq.config.VideoDataConfig` (``data:`` section)."""
        return cls(data.num_frames, data.sampling, data.frame_stride, data.test_clips)

    def train_indices(self, num_frames: int, rng: np.random.Generator | None) -> list[int]:
        """One random training clip of a video with ``num_frames`` decodable frames."""
        return sample_clip_indices(num_frames, self.num_frames, self.mode, self.stride, random=True, rng=rng)

    def eval_indices(self, num_frames: int) -> list[list[int]]:
        """The ``test_clips`` deterministic evaluation clips (clip 0 alone is the centred clip)."""
        return sample_multi_clip_indices(num_frames, self.test_clips, self.num_frames, self.mode, self.stride)


@dataclass(frozen=True)
class FrameGrid:
    """The frames a feature cache stores per video: ``num_clips`` evaluation-style clips, evenly spread.

    ``num_clips`` is ``test_clips`` times an odd number ``m``, so the grid's clip ``c * m + (m - 1) / 2``
    *is* evaluation clip ``c`` (same frame indices, see `sample_multi_clip_indices`): evaluating from
    the cache sees exactly the frames ``classify`` decodes from the file. Training draws from the grid:
    dense mode takes one of its windows (stride ``frame_stride``, the real spacing), segment mode one of
    its ``num_clips`` positions inside each segment. The trade-off against decoding: training jitter is
    limited to those positions. ``m`` is the largest odd number with ``num_clips * num_frames <=
    cache_frames`` (at least 1, so a grid holds at least ``test_clips * num_frames`` frames).

    Rows are laid out clip by clip: row ``q * T + t`` holds frame ``t`` of grid clip ``q``. Row numbers
    do not depend on the video's length, so cached rows are picked without knowing it.
    """

    sampling: ClipSampling
    num_clips: int

    @classmethod
    def for_cache(cls, sampling: ClipSampling, cache_frames: int) -> FrameGrid:
        """The largest grid of at most ``cache_frames`` frames (at least the evaluation clips)."""
        per_window = sampling.test_clips * sampling.num_frames
        m = max(1, cache_frames // per_window)
        m -= 1 - m % 2  # odd, so the evaluation clips sit on grid clips
        return cls(sampling, sampling.test_clips * m)

    @property
    def size(self) -> int:
        """Frames (cache rows) per video."""
        return self.num_clips * self.sampling.num_frames

    def key(self) -> tuple[object, ...]:
        """What the cached frames depend on (the stride only matters for dense windows)."""
        s = self.sampling
        return (s.mode, s.num_frames, s.stride if s.mode == "dense" else None, self.num_clips)

    def frame_indices(self, num_frames: int) -> list[int]:
        """The ``size`` frame indices to cache for a video of ``num_frames`` decodable frames."""
        s = self.sampling
        clips = sample_multi_clip_indices(num_frames, self.num_clips, s.num_frames, s.mode, s.stride)
        return [i for clip in clips for i in clip]

    def eval_rows(self) -> list[list[int]]:
        """Rows of the ``test_clips`` evaluation clips: ``frame_indices(n)[rows] == eval_indices(n)``."""
        t, n = self.sampling.num_frames, self.sampling.test_clips
        m = self.num_clips // n
        return [[(c * m + (m - 1) // 2) * t + k for k in range(t)] for c in range(n)]

    def train_rows(self, rng: np.random.Generator | None) -> list[int]:
        """Rows of one random training clip drawn from the grid."""
        rng = rng if rng is not None else np.random.default_rng()
        t = self.sampling.num_frames
        if self.sampling.mode == "dense":  # one whole window: the stride stays exact
            window = int(rng.integers(self.num_clips))
            return [window * t + k for k in range(t)]
        # segment: an independent grid position inside each segment (sorted, segments are ordered)
        return [int(q) * t + k for k, q in enumerate(rng.integers(self.num_clips, size=t))]
