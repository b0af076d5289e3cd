"""Decoding: generated good and broken files, rotation, frame folders, sparse seeking, real clips."""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from video_fixtures import (
    count_frames,
    frame_index_of,
    index_coded_frames,
    make_audio_only,
    make_corrupt_middle,
    make_corrupt_packet,
    make_empty_file,
    make_text_file,
    make_truncated,
    probe_video,
    read_video_frames,
    write_frame_folder,
    write_video,
)

from vision2seq.data.sampling import sample_segment_indices
from vision2seq.data.video import container as video_container
from vision2seq.data.video.container import apply_display_matrix
from vision2seq.data.video.reader import VideoDecodeError, list_frame_files, read_sampled_frames
from vision2seq.errors import UserError

REAL_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_videos"
N = 20  # frames of the generated index-coded clips


def indices_of(frames: list[np.ndarray], num_frames: int = N) -> list[int]:
    return [frame_index_of(f, num_frames) for f in frames]


def segments(num_segments: int):
    return functools.partial(sample_segment_indices, num_segments=num_segments)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One of each generated file, written once for the module."""
    d = tmp_path_factory.mktemp("clips")
    frames = index_coded_frames(N)
    paths = {
        "avi": write_video(d / "clip.avi", frames, keyframe_interval=5),
        "mp4": write_video(d / "clip.mp4", frames, codec="libx264"),
        "mkv": write_video(d / "clip.mkv", frames, codec="libx264"),
    }
    # Noise makes frames big enough that half the file is past the (few KB) AVI header.
    noise = np.random.default_rng(0).integers(0, 255, (N, 48, 64, 3), dtype=np.uint8)
    paths["noise"] = write_video(d / "noise.avi", noise, keyframe_interval=5)
    paths["truncated"] = make_truncated(paths["noise"], d / "truncated.avi")
    paths["header_only"] = make_truncated(paths["avi"], d / "header_only.avi", keep_fraction=0.05)
    paths["corrupt_packet"] = make_corrupt_packet(paths["avi"], d / "corrupt_packet.avi", packet_index=7)
    paths["corrupt_middle"] = make_corrupt_middle(paths["avi"], d / "corrupt_middle.avi", num_bytes=256)
    return paths


# --- good files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["avi", "mp4", "mkv"])
def test_reads_every_frame_in_order(clips: dict[str, Path], kind: str) -> None:
    frames = read_video_frames(clips[kind])
    assert indices_of(frames) == list(range(N))
    assert frames[0].dtype == np.uint8 and frames[0].shape == (32, 64, 3)


def test_reads_requested_indices_in_the_given_order(clips: dict[str, Path]) -> None:
    frames = read_video_frames(clips["avi"], [7, 2, 2, 19])
    assert indices_of(frames) == [7, 2, 2, 19]


def test_index_past_the_end_returns_the_last_frame(clips: dict[str, Path]) -> None:
    assert indices_of(read_video_frames(clips["avi"], [0, N, N + 5])) == [0, N - 1, N - 1]


def test_negative_index_is_refused(clips: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        read_video_frames(clips["avi"], [-1])


def test_colour_conversion_matches_pyav(clips: dict[str, Path]) -> None:
    with av.open(str(clips["mp4"])) as container:
        expected = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    for ours, theirs in zip(read_video_frames(clips["mp4"]), expected, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_probe_reports_container_metadata(clips: dict[str, Path]) -> None:
    info = probe_video(clips["avi"])
    assert (info.num_frames_hint, info.fps, info.width, info.height, info.rotation) == (N, 25.0, 64, 32, 0)
    assert info.duration_s == pytest.approx(N / 25, abs=0.05)


def test_sampler_gets_the_decoded_count(clips: dict[str, Path]) -> None:
    seen: list[int] = []

    def sampler(n: int) -> list[int]:
        seen.append(n)
        return sample_segment_indices(n, 4)

    sampled = read_sampled_frames(clips["avi"], sampler)
    assert sampled.num_frames == N and N in seen
    assert sampled.indices == sample_segment_indices(N, 4)
    assert indices_of(sampled.frames) == sampled.indices


def test_odd_sized_and_single_frame_videos(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    odd = write_video(tmp_path / "odd.avi", rng.integers(0, 255, (3, 33, 47, 3), dtype=np.uint8))
    assert [f.shape for f in read_video_frames(odd)] == [(33, 47, 3)] * 3
    odd_h264 = write_video(
        tmp_path / "odd.mp4", rng.integers(0, 255, (3, 35, 21, 3), dtype=np.uint8), codec="libx264"
    )
    assert read_video_frames(odd_h264)[0].shape == (35, 21, 3)
    single = write_video(tmp_path / "single.avi", index_coded_frames(1))
    sampled = read_sampled_frames(single, segments(8))
    assert sampled.num_frames == 1 and sampled.indices == [0] * 8 and len(sampled.frames) == 8


def test_variable_frame_rate_frames_are_counted_in_order(tmp_path: Path) -> None:
    path = tmp_path / "vfr.mkv"
    frames = index_coded_frames(N)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 100)
        pts = np.cumsum([0] + [4 * (1 + i % 3) for i in range(N - 1)])  # 25, 12.5 and 8.3 fps in turn
        for frame, t in zip(frames, pts, strict=True):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts, video_frame.time_base = int(t), Fraction(1, 100)
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert indices_of(read_video_frames(path)) == list(range(N))


# --- rotation -----------------------------------------------------------------------------------


def _ffmpeg_display_matrix(degrees: int, hflip: bool = False, vflip: bool = False) -> np.ndarray:
    """What FFmpeg's av_display_rotation_set + av_display_matrix_flip store (16.16 fixed point)."""
    theta = np.radians(degrees)
    c, s = round(np.cos(theta)) << 16, round(np.sin(theta)) << 16
    matrix = np.array([c, -s, 0, s, c, 0, 0, 0, 1 << 30], dtype=np.int64)
    flip = np.array([-1 if hflip else 1, -1 if vflip else 1, 1] * 3)
    return matrix * flip


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
@pytest.mark.parametrize("hflip", [False, True])
def test_display_matrix_rotates_counter_clockwise_then_mirrors(degrees: int, hflip: bool) -> None:
    image = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    expected = np.rot90(image, k=degrees // 90)
    if hflip:
        expected = expected[:, ::-1]
    np.testing.assert_array_equal(
        apply_display_matrix(image, _ffmpeg_display_matrix(degrees, hflip)), expected
    )


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotation_metadata_is_applied(tmp_path: Path, degrees: int) -> None:
    frame = np.zeros((32, 64, 3), dtype=np.uint8)
    frame[:16, 32:] = 255  # top-right quarter white
    path = write_video(tmp_path / "rotated.mp4", np.stack([frame] * 3), codec="libx264", rotation=degrees)
    decoded = read_video_frames(path)[0].astype(int)
    expected = np.rot90(frame, k=degrees // 90).astype(int)
    assert decoded.shape == expected.shape
    assert np.abs(decoded - expected).mean() < 8
    info = probe_video(path)
    assert (info.height, info.width, info.rotation) == (*expected.shape[:2], degrees % 360)


# --- broken files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "nothing_here.mp4", "missing file"),
        (lambda d: make_empty_file(d / "empty.mp4"), "empty file"),
        (lambda d: make_text_file(d / "notes.mp4"), "not a video file"),
        (lambda d: make_audio_only(d / "audio.m4a"), r"no video stream \(audio-only\?\)"),
        (lambda d: make_audio_only(d / "audio.mp4", codec="mp2"), r"no video stream \(audio-only\?\)"),
    ],
)
def test_unreadable_files_raise_one_line_user_errors(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    for read in (read_video_frames, probe_video, lambda p: read_sampled_frames(p, segments(4))):
        with pytest.raises(UserError, match=message) as caught:
            read(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
        assert isinstance(caught.value, VideoDecodeError)


def test_truncated_file_decodes_what_it_can(clips: dict[str, Path]) -> None:
    path = clips["truncated"]
    decoded = count_frames(path)
    assert 0 < decoded < N and probe_video(path).num_frames_hint == N  # the container still claims N
    sampled = read_sampled_frames(path, segments(4))
    assert sampled.num_frames == decoded
    assert sampled.indices == sample_segment_indices(decoded, 4)
    full = read_video_frames(clips["noise"], sampled.indices)
    for ours, expected in zip(sampled.frames, full, strict=True):
        np.testing.assert_array_equal(ours, expected)


def test_file_cut_before_any_frame_is_an_error(clips: dict[str, Path]) -> None:
    with pytest.raises(UserError, match=r"no decodable frames|not a video file"):
        read_video_frames(clips["header_only"])


def test_corrupt_packet_is_skipped(clips: dict[str, Path]) -> None:
    frames = read_video_frames(clips["corrupt_packet"])
    assert len(frames) == N - 1
    assert 7 not in indices_of(frames)[:8]  # the damaged frame is gone, the others follow in order


def test_corrupt_bytes_in_the_middle_still_decode(clips: dict[str, Path]) -> None:
    assert len(read_video_frames(clips["corrupt_middle"])) >= N - 2


# --- frame folders ------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["frame{:06d}.jpg", "img_{:05d}.jpg", "{}.png"])
def test_frame_folder_reads_like_a_video(tmp_path: Path, pattern: str) -> None:
    folder = write_frame_folder(tmp_path / "clip", index_coded_frames(12), pattern=pattern)
    assert indices_of(read_video_frames(folder), 12) == list(range(12))  # "10.png" after "9.png"
    sampled = read_sampled_frames(folder, segments(4))
    assert sampled.num_frames == 12 and indices_of(sampled.frames, 12) == sampled.indices
    info = probe_video(folder)
    assert (info.num_frames_hint, info.width, info.height) == (12, 64, 32)


def test_frame_folder_errors_name_the_folder_or_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        read_video_frames(tmp_path / "empty")
    folder = write_frame_folder(tmp_path / "clip", index_coded_frames(3))
    (folder / "frame000002.jpg").write_text("not a jpeg")
    with pytest.raises(UserError, match=r"frame000002\.jpg: not a readable image"):
        read_video_frames(folder)
    assert list_frame_files(folder)[0].name == "frame000001.jpg"


# --- sparse decoding of long videos -------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "codec"), [("avi", "mpeg4"), ("mp4", "libx264"), ("mkv", "libx264")])
def test_sparse_seeking_returns_the_sampled_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, codec: str
) -> None:
    n = 300
    path = write_video(
        tmp_path / f"long.{suffix}", index_coded_frames(n, 16, 64), fps=30, codec=codec, keyframe_interval=30
    )
    sequential = read_sampled_frames(path, segments(8), sparse_min_frames=None)
    real_iter, decoded = video_container._iter_frames, []

    def counting_iter(container, stream, path):
        for frame in real_iter(container, stream, path):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(video_container, "_iter_frames", counting_iter)
    monkeypatch.setattr(video_container, "_read_sequential", None)  # a fallback to a full decode would fail
    sparse = read_sampled_frames(path, segments(8), sparse_min_frames=100)
    assert len(decoded) < n
    assert sparse.indices == sequential.indices == sample_segment_indices(n, 8)
    assert indices_of(sparse.frames, n) == sparse.indices
    late = read_sampled_frames(path, lambda _: [0, 150, 299, 310], sparse_min_frames=100)
    assert indices_of(late.frames, n) == [0, 150, 299, 299]  # past the end: the last frame


# --- real dataset clips -------------------------------------------------------------------------

REAL_CLIPS = (
    sorted(p.name for p in REAL_VIDEOS.glob("*") if p.suffix in (".avi", ".mp4"))
    if REAL_VIDEOS.is_dir()
    else []
)
# Decoded counts checked by hand; the HMDB51 .avi files claim one frame more than decodes.
REAL_COUNTS = {"RATRACE_wave_f_nm_np1_fr_goo_37.avi": (73, 72), "v_SoccerJuggling_g23_c01.avi": (240, 240)}


@pytest.mark.skipif(not REAL_CLIPS, reason=f"real clips not found at {REAL_VIDEOS} (shared reference data)")
@pytest.mark.parametrize("name", REAL_CLIPS or ["none"])
def test_real_clip_decodes_and_sampling_respects_the_decoded_count(name: str) -> None:
    path = REAL_VIDEOS / name
    info = probe_video(path)
    decoded = count_frames(path)
    assert decoded in (info.num_frames_hint, info.num_frames_hint - 1)
    if name in REAL_COUNTS:
        assert (info.num_frames_hint, decoded) == REAL_COUNTS[name]
    sampled = read_sampled_frames(path, segments(8))
    assert sampled.num_frames == decoded
    assert sampled.indices == sample_segment_indices(decoded, 8)
    assert all(f.shape == (info.height, info.width, 3) for f in sampled.frames)


@pytest.mark.skipif(not REAL_CLIPS, reason=f"real clips not found at {REAL_VIDEOS} (shared reference data)")
@pytest.mark.parametrize("name", ["v_SoccerJuggling_g23_c01.avi", "R6llTwEh07w.mp4"])
def test_real_clip_sparse_seeking_matches_sequential_decoding(name: str) -> None:
    path = REAL_VIDEOS / name
    sparse = read_sampled_frames(path, segments(8), sparse_min_frames=1)
    sequential = read_sampled_frames(path, segments(8), sparse_min_frames=None)
    assert sparse.indices == sequential.indices
    for a, b in zip(sparse.frames, sequential.frames, strict=True):
        np.testing.assert_array_equal(a, b)


def test_negative_sampled_index_is_refused(clips: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="negative frame indices"):
        read_sampled_frames(clips["avi"], lambda n: [0, -1])
