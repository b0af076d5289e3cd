"""Bad and damaged video files, through the Python API (decoding, ``VideoClassifier.classify`` and
``stream_file``) and the CLI (``classify``, ``classify --stream``, ``evaluate``): undecodable files are
one line each naming the file and the reason, never a traceback, and the rest of the batch is still
classified; damaged files that still hold frames are classified from the frames that decode."""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tiny_models
from bad_inputs import make_good, png_declaring
from tiny_models import assert_reported, error_lines, run_cli
from video_fixtures import (
    count_frames,
    make_audio_only,
    make_corrupt_packet,
    make_empty_file,
    make_text_file,
    make_truncated,
    moving_square_frames,
    probe_video,
    write_frame_folder,
    write_video,
)

from vision2seq.data.sampling import sample_segment_indices
from vision2seq.data.video import container as video_container
from vision2seq.data.video import shared as video_types
from vision2seq.data.video.datasets import parse_class_folders
from vision2seq.data.video.reader import VideoDecodeError, read_sampled_frames
from vision2seq.inference.classifier import VideoClassifier

N = 8  # frames of the good clips

# Shared fixtures (see tiny_models): the tiny checkpoints, and torch on one thread for these tests.
tiny_video = tiny_models.tiny_video
torch_one_thread = tiny_models.torch_one_thread


def _noise_clip(folder: Path) -> Path:
    # Noise makes frames big enough that half the file lies past the AVI header and index.
    noise = np.random.default_rng(0).integers(0, 255, (12, 48, 64, 3), dtype=np.uint8)
    return write_video(folder / "noise_source.avi", noise, keyframe_interval=4)


def _unknown_codec(folder: Path, good: Path) -> Path:
    """The good clip with its codec tag (FourCC) overwritten: FFmpeg finds a stream but no decoder."""
    data = good.read_bytes()
    assert data.count(b"FMP4") == 2
    path = folder / "unknown_codec.avi"
    path.write_bytes(data.replace(b"FMP4", b"ZZZZ"))
    return path


def _bad_frame_folder(folder: Path) -> Path:
    frames = write_frame_folder(folder / "frames_bad", moving_square_frames(4, 32, 32))
    (frames / "frame000001.jpg").write_bytes(png_declaring(100_000, 100_000))  # a bomb among the frames
    return frames


# name -> (writer(folder, good clip) -> path, reason in the one-line error)
UNDECODABLE: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "missing": (lambda d, good: d / "missing.avi", "missing file"),
    "empty": (lambda d, good: make_empty_file(d / "empty.mp4"), "empty file"),
    "truncated": (
        lambda d, good: make_truncated(good, d / "truncated.avi", keep_fraction=0.05),
        "truncated or corrupt",
    ),
    "audio_only": (lambda d, good: make_audio_only(d / "audio_only.mp4"), "no video stream (audio-only?)"),
    "text_as_mp4": (lambda d, good: make_text_file(d / "notes.mp4"), "not a video file"),
    "unknown_codec": (_unknown_codec, "the video stream's codec is unknown"),
    "frame_folder_with_bomb": (lambda d, good: _bad_frame_folder(d), "frame000001.jpg: not a readable image"),
}

# name -> writer(folder, good clip) -> path; the frames that must decode from it
DECODABLE: dict[str, tuple[Callable[[Path, Path], Path], int | None]] = {
    "single_frame": (lambda d, good: write_video(d / "single.avi", moving_square_frames(1, 32, 32)), 1),
    "fewer_frames_than_claimed": (
        lambda d, good: make_truncated(_noise_clip(d), d / "fewer.avi", keep_fraction=0.5),
        None,  # checked against the container's claim below
    ),
    "corrupt_packet": (
        lambda d, good: make_corrupt_packet(good, d / "corrupt_packet.avi", packet_index=4),
        N - 1,
    ),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every case written once; ``good`` and ``good2`` are ordinary clips."""
    folder = tmp_path_factory.mktemp("bad_videos")
    good = write_video(folder / "good.avi", moving_square_frames(N, 32, 32, "right"))
    good2 = write_video(folder / "good2.avi", moving_square_frames(N, 32, 32, "left"))
    paths = {"good": good, "good2": good2}
    for name, (make, _) in {**UNDECODABLE, **DECODABLE}.items():
        paths[name] = make(folder, good)
    (folder / "noise_source.avi").unlink()
    return paths


@pytest.fixture(scope="module")
def classifier(tiny_video) -> VideoClassifier:
    return VideoClassifier.from_checkpoint(tiny_video.checkpoint, device="cpu")


# --- decoding ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(UNDECODABLE))
def test_undecodable_video_is_one_line_error(case: str, clips: dict[str, Path]) -> None:
    path, reason = clips[case], UNDECODABLE[case][1]
    with pytest.raises(VideoDecodeError) as caught:
        read_sampled_frames(path, functools.partial(sample_segment_indices, num_segments=4))
    message = str(caught.value)
    assert path.name in message and reason in message and "\n" not in message


@pytest.mark.parametrize("case", sorted(DECODABLE))
def test_damaged_video_decodes_the_frames_it_has(case: str, clips: dict[str, Path]) -> None:
    path, expected = clips[case], DECODABLE[case][1]
    decoded = count_frames(path)
    if expected is None:  # the container still claims all 12 frames; only some decode
        claimed = probe_video(path).num_frames_hint
        assert claimed == 12 and 0 < decoded < claimed
    else:
        assert decoded == expected
    sampled = read_sampled_frames(path, functools.partial(sample_segment_indices, num_segments=4))
    assert sampled.num_frames == decoded and len(sampled.frames) == 4
    assert sampled.indices == sample_segment_indices(decoded, 4)


# --- VideoClassifier --------------------------------------------------------------------------------


def test_classifier_reports_undecodable_and_classifies_the_rest(
    classifier: VideoClassifier, clips: dict[str, Path]
) -> None:
    names = ["good", *sorted(UNDECODABLE), *sorted(DECODABLE), "good2"]
    results = classifier.classify([clips[n] for n in names], top_k=2, num_workers=0)
    assert [r.file for r in results] == [str(clips[n]) for n in names]
    for name, result in zip(names, results, strict=True):
        if name in UNDECODABLE:
            assert result.labels == [] and clips[name].name in result.error
            assert UNDECODABLE[name][1] in result.error
        else:
            assert result.error is None and len(result.labels) == 2
            assert {label for label, _ in result.labels} == set(classifier.class_names)
            assert 0.99 < sum(score for _, score in result.labels) < 1.01


@pytest.mark.parametrize("case", sorted(UNDECODABLE))
def test_stream_file_raises_one_line_error(case: str, classifier: VideoClassifier, clips) -> None:
    with pytest.raises(VideoDecodeError, match=clips[case].name):
        list(classifier.stream_file(clips[case]))


@pytest.mark.parametrize("case", sorted(DECODABLE))
def test_stream_file_streams_every_decodable_frame(case: str, classifier: VideoClassifier, clips) -> None:
    updates = list(classifier.stream_file(clips[case]))
    assert len(updates) == count_frames(clips[case])
    assert [u.frame for u in updates] == list(range(len(updates)))


# --- CLI: classify ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(UNDECODABLE))
def test_cli_classify_reports_bad_video_and_classifies_the_rest(
    case: str,
    tiny_video,
    clips,
    capsys,
) -> None:
    good, bad = [clips["good"], clips["good2"]], clips[case]
    code, out, err = run_cli(
        capsys, "classify", "--checkpoint", tiny_video.checkpoint, good[0], bad, good[1], "--workers", "0"
    )
    assert code == 1
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(p) for p in good]
    assert len(error_lines(err)) == 1
    assert_reported(err, bad.name, UNDECODABLE[case][1])


@pytest.mark.parametrize("case", sorted(UNDECODABLE))
def test_cli_classify_stream_reports_bad_video_and_streams_the_rest(
    case: str,
    tiny_video,
    clips,
    capsys,
) -> None:
    bad = clips[case]
    code, out, err = run_cli(
        capsys, "classify", "--checkpoint", tiny_video.checkpoint, "--stream", clips["good"], bad
    )
    assert code == 1
    rows = [line.split("\t") for line in out.splitlines()]
    assert len(rows) == N and {row[0] for row in rows} == {str(clips["good"])}
    assert len(error_lines(err)) == 1
    assert_reported(err, bad.name, UNDECODABLE[case][1])


def test_cli_classify_damaged_but_decodable_videos(tiny_video, clips, capsys) -> None:
    names = sorted(DECODABLE)
    code, out, err = run_cli(
        capsys, "classify", "--checkpoint", tiny_video.checkpoint, "--json", *(clips[n] for n in names)
    )
    assert code == 0 and error_lines(err) == []
    rows = json.loads(out)
    assert [r["file"] for r in rows] == [str(clips[n]) for n in names]
    assert all(r["labels"] for r in rows)
    code, out, err = run_cli(
        capsys, "classify", "--checkpoint", tiny_video.checkpoint, "--stream", *(clips[n] for n in names)
    )
    assert code == 0 and error_lines(err) == []
    assert len(out.splitlines()) == sum(count_frames(clips[n]) for n in names)


def test_cli_classify_all_at_once_in_worker_processes(tiny_video, clips, capsys) -> None:
    """Decoding errors raised in DataLoader workers come back as the same one-line reports."""
    names = ["good", *sorted(UNDECODABLE), *sorted(DECODABLE), "good2"]
    code, out, err = run_cli(
        capsys,
        "classify",
        "--checkpoint",
        tiny_video.checkpoint,
        *(clips[n] for n in names),
        "--workers",
        "2",
        "--batch-size",
        "3",
    )
    assert code == 1
    classified = [line.split("\t")[0] for line in out.splitlines()]
    assert classified == [str(clips[n]) for n in names if n not in UNDECODABLE]
    assert len(error_lines(err)) == len(UNDECODABLE)
    for name, (_, reason) in UNDECODABLE.items():
        assert_reported(err, clips[name].name, reason)


def test_cli_classify_image_instead_of_video(tiny_video, tmp_path, capsys) -> None:
    image = make_good(tmp_path, "photo.png")
    code, _, err = run_cli(capsys, "classify", "--checkpoint", tiny_video.checkpoint, image)
    assert code == 1
    assert_reported(err, "photo.png", "not a video file")


# --- CLI: evaluate and train on lists with bad videos -------------------------------------------


def _lists_with_bad_videos(tiny, clips, folder: Path, listing: str) -> tuple[Path, Path, dict[str, str]]:
    """A copy of the tiny UCF101 layout whose ``listing`` (``testlist01.txt`` or ``trainlist01.txt``)
    also holds the undecodable and damaged clips."""
    videos, annotations = folder / "UCF-101", folder / "ucfTrainTestlist"
    shutil.copytree(tiny.data, videos)
    shutil.copytree(tiny.annotations, annotations)
    bad = {}
    lines = []
    for name in sorted(UNDECODABLE) + sorted(DECODABLE):
        if name == "missing":
            continue  # a missing file is an annotation problem (tested in test_bad_annotations)
        source = clips[name]
        target = videos / "MoveRight" / f"v_MoveRight_g07_{name}{source.suffix}"
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
        lines.append(f"MoveRight/{target.name}" + (" 2\r\n" if listing.startswith("train") else "\r\n"))
        if name in UNDECODABLE:
            bad[target.name] = UNDECODABLE[name][1]
    with (annotations / listing).open("a") as f:
        f.writelines(lines)
    return videos, annotations, bad


def _run_with_bad_videos(command: str, tiny, clips, folder: Path, capsys) -> tuple[int, str, str, dict]:
    """``evaluate`` (bad clips in the test list) or ``train`` (in the train list), with a fresh cache."""
    listing = "testlist01.txt" if command == "evaluate" else "trainlist01.txt"
    videos, annotations, bad = _lists_with_bad_videos(tiny, clips, folder, listing)
    data = [f"data.videos={videos}", f"data.annotations={annotations}", f"data.cache_dir={folder / 'cache'}"]
    if command == "evaluate":
        argv = ["evaluate", "--checkpoint", tiny.checkpoint, "--json", *data]
    else:
        argv = ["train", tiny.config, *data, f"output_dir={folder / 'run'}"]
    return (*run_cli(capsys, *argv, "--quiet"), bad)


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_cli_reports_bad_videos_and_uses_the_rest(command: str, tiny_video, clips, tmp_path, capsys) -> None:
    _, out, err, bad = _run_with_bad_videos(command, tiny_video, clips, tmp_path, capsys)
    if command == "evaluate":
        metrics = json.loads(out)
        assert sum(row["support"] for row in metrics["per_class"]) == 2 + len(DECODABLE)
    else:
        assert out.startswith("trained 1 epochs") and (tmp_path / "run" / "best.pt").is_file()
    # Not reports: evaluate's "wrote confusion_test.csv" and train's epoch summary.
    reports = [line for line in error_lines(err) if not line.startswith(("wrote ", "epoch 1/1: "))]
    assert len(reports) == len(bad)
    for name, reason in bad.items():
        assert_reported(err, name, reason)


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_cli_exit_status_after_skipping_bad_videos(command: str, tiny_video, clips, tmp_path, capsys) -> None:
    code, _, _, _ = _run_with_bad_videos(command, tiny_video, clips, tmp_path, capsys)
    assert code == 1


# --- frame-size limit, frame folders of any image format, unlistable folders ---------------------------


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_frames_over_the_pixel_limit_are_refused_before_decoding(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = moving_square_frames(6, 32, 48)
    if kind == "file":
        path = write_video(tmp_path / "big.avi", frames)
    else:
        path = write_frame_folder(tmp_path / "big", frames)
    monkeypatch.setattr(video_types, "MAX_FRAME_PIXELS", 32 * 48 - 1)
    calls = []
    monkeypatch.setattr(video_container, "_to_rgb", lambda f: calls.append(f))  # nothing converted
    with pytest.raises(VideoDecodeError) as caught:
        read_sampled_frames(path, lambda n: list(range(n)))
    message = str(caught.value)
    assert message == (
        f"{path if kind == 'file' else path / 'frame000001.jpg'}: frames of 48x32 pixels "
        "exceed the limit of 1535 pixels per frame (8K UHD is 7680x4320); scale the video down first"
    )
    assert not calls
    monkeypatch.setattr(video_types, "MAX_FRAME_PIXELS", 32 * 48)
    assert len(read_sampled_frames(path, lambda n: [0]).frames) == 1  # at the limit: accepted


def test_default_pixel_limit_is_8k() -> None:
    assert video_types.MAX_FRAME_PIXELS == 7680 * 4320
    with pytest.raises(VideoDecodeError, match="8000x8000 pixels exceed the limit of 33177600"):
        video_types.check_frame_size(Path("huge.avi"), 8000, 8000)


def test_cli_classify_finds_webp_frame_folders_like_training(tiny_video, tmp_path, capsys) -> None:
    folder = write_frame_folder(
        tmp_path / "clips" / "webp_clip", moving_square_frames(6, 32, 32), "{:03d}.webp"
    )
    code, out, err = run_cli(capsys, "classify", "--checkpoint", tiny_video.checkpoint, tmp_path / "clips")
    assert code == 0, err
    assert out.startswith(f"{folder}\t")
    assert parse_class_folders(tmp_path, "all").samples[0].path == folder  # training takes it as a clip too


def test_cli_classify_reports_an_unlistable_folder_and_classifies_the_rest(
    tiny_video, clips, tmp_path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    (locked / "inner").mkdir(parents=True)
    shutil.copy(clips["good"], locked / "inner")
    real_scandir = os.scandir

    def scandir(path="."):  # what listing a folder without read permission does (tests may run as root)
        if Path(path) in (locked, locked / "inner"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    real_stat = os.stat

    def stat(path, *args, **kwargs):  # a file below a folder without search permission
        if Path(path).parent == locked / "inner":
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "stat", stat)
    below = locked / "inner" / clips["good"].name
    code, out, err = run_cli(
        capsys,
        "classify",
        "--checkpoint",
        tiny_video.checkpoint,
        locked,
        below,
        clips["good"],
        "--workers",
        "0",
    )
    assert code == 1
    assert_reported(err, f"{locked}:", "cannot list folder (permission denied)")
    assert_reported(err, str(below), "cannot access (permission denied)")
    assert out.startswith(f"{clips['good']}\t") and len(out.splitlines()) == 1
