"""Frame-index samplers: properties over arbitrary counts, plus the exact eval positions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vision2seq.data.sampling import (
    ClipSampling,
    FrameGrid,
    sample_clip_indices,
    sample_dense_indices,
    sample_multi_clip_indices,
    sample_segment_indices,
)

frames = st.integers(1, 2000)
counts = st.integers(1, 64)
strides = st.integers(1, 8)
seeds = st.integers(0, 2**32 - 1)


def assert_valid(indices: list[int], num_frames: int, count: int) -> None:
    assert len(indices) == count
    assert all(isinstance(i, int) for i in indices)
    assert all(0 <= i < num_frames for i in indices)
    assert indices == sorted(indices)


@settings(max_examples=300, deadline=None)
@given(num_frames=frames, count=counts, seed=seeds, random=st.booleans())
def test_segment_indices_are_valid_sorted_and_deterministic(
    num_frames: int, count: int, seed: int, random: bool
) -> None:
    first = sample_segment_indices(num_frames, count, random=random, rng=np.random.default_rng(seed))
    again = sample_segment_indices(num_frames, count, random=random, rng=np.random.default_rng(seed))
    assert_valid(first, num_frames, count)
    assert first == again
    if num_frames >= count:  # one frame per segment: no repeats
        assert len(set(first)) == count


@settings(max_examples=300, deadline=None)
@given(num_frames=frames, count=counts, seed=seeds)
def test_random_segment_pick_stays_inside_its_segment(num_frames: int, count: int, seed: int) -> None:
    indices = sample_segment_indices(num_frames, count, random=True, rng=np.random.default_rng(seed))
    if num_frames >= count:
        for k, i in enumerate(indices):
            assert k * num_frames // count <= i < (k + 1) * num_frames // count


@settings(max_examples=300, deadline=None)
@given(num_frames=frames, count=counts, stride=strides, seed=seeds, random=st.booleans())
def test_dense_indices_are_valid_sorted_and_deterministic(
    num_frames: int, count: int, stride: int, seed: int, random: bool
) -> None:
    first = sample_dense_indices(num_frames, count, stride, random=random, rng=np.random.default_rng(seed))
    again = sample_dense_indices(num_frames, count, stride, random=random, rng=np.random.default_rng(seed))
    assert_valid(first, num_frames, count)
    assert first == again
    steps = np.diff(first)
    if (count - 1) * stride < num_frames:  # the window fits: exact stride
        assert (steps == stride).all()
    else:  # too short: starts at 0 and repeats the last frame
        assert (
            first[0] == 0 and first[-1] == num_frames - 1 and set(steps) <= {0, stride} | set(range(stride))
        )


@settings(max_examples=300, deadline=None)
@given(
    num_frames=frames,
    num_clips=st.integers(1, 10),
    count=counts,
    stride=strides,
    mode=st.sampled_from(["segment", "dense"]),
)
def test_multi_clip_indices_are_valid_and_spread(
    num_frames: int, num_clips: int, count: int, stride: int, mode: str
) -> None:
    clips = sample_multi_clip_indices(num_frames, num_clips, count, mode, stride)
    assert len(clips) == num_clips
    for clip in clips:
        assert_valid(clip, num_frames, count)
    starts = [clip[0] for clip in clips]
    assert starts == sorted(starts)
    single = sample_clip_indices(num_frames, count, mode, stride)
    assert sample_multi_clip_indices(num_frames, 1, count, mode, stride) == [single]


def test_eval_takes_segment_centres() -> None:
    assert sample_segment_indices(80, 8) == [5, 15, 25, 35, 45, 55, 65, 75]
    assert sample_segment_indices(72, 8) == [4, 13, 22, 31, 40, 49, 58, 67]


def test_eval_centres_the_dense_window() -> None:
    assert sample_dense_indices(100, 4, 2) == [47, 49, 51, 53]
    assert sample_dense_indices(7, 7) == list(range(7))


def test_short_videos_are_padded_by_repeating() -> None:
    assert sample_segment_indices(3, 8) == [0, 0, 0, 1, 1, 1, 2, 2]
    assert sample_segment_indices(1, 4, random=True, rng=np.random.default_rng(0)) == [0, 0, 0, 0]
    assert sample_dense_indices(5, 4, 2) == [0, 2, 4, 4]


def test_training_draws_vary_and_cover_each_segment() -> None:
    rng = np.random.default_rng(0)
    draws = np.array([sample_segment_indices(40, 4, random=True, rng=rng) for _ in range(400)])
    for k in range(4):
        assert set(draws[:, k]) == set(range(10 * k, 10 * k + 10))
    starts = {sample_dense_indices(20, 4, 2, random=True, rng=rng)[0] for _ in range(400)}
    assert starts == set(range(20 - 7 + 1))


def test_multi_clip_positions() -> None:
    assert sample_multi_clip_indices(40, 2, 4) == [[2, 12, 22, 32], [7, 17, 27, 37]]
    assert sample_multi_clip_indices(100, 3, 4, "dense", 2) == [
        [15, 17, 19, 21],
        [47, 49, 51, 53],
        [78, 80, 82, 84],
    ]


@pytest.mark.parametrize(
    "call",
    [
        lambda: sample_segment_indices(0, 4),
        lambda: sample_segment_indices(-3, 4),
        lambda: sample_segment_indices(10, 0),
        lambda: sample_dense_indices(0, 4),
        lambda: sample_dense_indices(10, 4, 0),
        lambda: sample_multi_clip_indices(0, 2, 4),
        lambda: sample_multi_clip_indices(10, 0, 4),
        lambda: sample_multi_clip_indices(10, 2, 4, "random"),
        lambda: sample_clip_indices(10, 4, "random"),
    ],
)
def test_bad_arguments_raise_value_error(call) -> None:
    with pytest.raises(ValueError):
        call()


@settings(max_examples=300, deadline=None)
@given(
    num_frames=frames,
    count=st.integers(1, 16),
    stride=strides,
    test_clips=st.integers(1, 5),
    cache_frames=st.integers(1, 200),
    mode=st.sampled_from(["segment", "dense"]),
    seed=seeds,
)
def test_cache_grid_holds_the_evaluation_clips_and_valid_training_clips(
    num_frames: int, count: int, stride: int, test_clips: int, cache_frames: int, mode: str, seed: int
) -> None:
    sampling = ClipSampling(count, mode, stride, test_clips)
    grid = FrameGrid.for_cache(sampling, cache_frames)
    assert (grid.num_clips // test_clips) % 2 == 1 and grid.num_clips % test_clips == 0
    assert grid.size <= max(cache_frames, count * test_clips)
    cached = grid.frame_indices(num_frames)
    assert len(cached) == grid.size
    # evaluation from the cache = evaluation (and classify) from the file, frame for frame
    assert [[cached[r] for r in rows] for rows in grid.eval_rows()] == sampling.eval_indices(num_frames)
    train = [cached[r] for r in grid.train_rows(np.random.default_rng(seed))]
    assert_valid(train, num_frames, count)
    if mode == "dense" and (count - 1) * stride < num_frames:
        assert (np.diff(train) == stride).all()  # the configured spacing, as when decoding the file


def test_cache_grid_sizes() -> None:
    assert FrameGrid.for_cache(ClipSampling(8), 32).size == 24  # 3 positions per segment (odd)
    assert FrameGrid.for_cache(ClipSampling(16, test_clips=3), 32).size == 48  # at least the eval clips
    assert FrameGrid.for_cache(ClipSampling(8, "dense", 4, test_clips=4), 96).num_clips == 12
