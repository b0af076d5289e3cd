"""The offline video path: generated captioned clips, and the demos that train on generated clips, write
a real checkpoint, say what it knows and print a command that runs it on a clip."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
import tiny_models

from vision2seq.__main__ import main
from vision2seq.data.video.caption_records import parse_msrvtt
from vision2seq.data.video.reader import iter_frames
from vision2seq.synthetic import CAPTION_COLOURS, make_motion_caption_videos

torch_one_thread = tiny_models.torch_one_thread


def square_centre(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) centre and mean RGB of the pixels brighter than the dark background."""
    mask = frame.max(axis=-1) > 120
    rows, cols = np.nonzero(mask)
    return np.array([rows.mean(), cols.mean()]), frame[mask].mean(axis=0)


def test_captioned_clips_show_what_their_captions_say(tmp_path):
    videos, annotations = make_motion_caption_videos(tmp_path, clips_per_pair=(1, 0, 1), num_frames=8)
    clips = parse_msrvtt(videos, [annotations])
    assert len(clips) == 2 * 4 * 4 and {c.split for c in clips} == {"train", "test"}
    steps = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
    for clip in clips:
        words = clip.captions[0].rstrip(".").split()
        colour, direction = words[1], words[-1]
        assert all(colour in c and direction in c for c in clip.captions), clip.captions
        frames = [frame for _, _, frame in iter_frames(clip.path)]
        (start, rgb), (end, _) = square_centre(frames[0]), square_centre(frames[-1])
        nearest = min(CAPTION_COLOURS, key=lambda name: np.abs(rgb - CAPTION_COLOURS[name]).sum())
        assert nearest == colour, (clip.key, rgb)
        moved = end - start
        assert np.sign(moved[np.argmax(np.abs(moved))]) == sum(steps[direction]), (clip.key, moved)
        assert np.abs(moved).argmax() == (0 if steps[direction][0] else 1), (clip.key, moved)


def run_demo(capsys, task: str, output: Path, *overrides: str) -> str:
    capsys.readouterr()
    assert main(["demo", "--task", task, "--output-dir", str(output), "--quiet", *overrides]) == 0
    return capsys.readouterr().out


def printed_command(out: str, prefix: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(prefix))
    return shlex.split(line[len(prefix) :])[1:]  # drop the program name


@pytest.mark.slow
def test_video_demo_checkpoint_classifies_the_clip_it_names(tmp_path, capsys):
    out = run_demo(capsys, "video", tmp_path, "train.epochs=2", "model.temporal.hidden_dim=8")
    best = tmp_path / "run" / "best.pt"
    assert best.is_file() and "most-frequent-class baseline" in out
    assert "knows only the generated clips" in out and "which then means nothing" in out
    argv = printed_command(out, "classify clips with it: ")
    assert argv[:3] == ["classify", "--checkpoint", str(best)]
    assert main(argv) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.split("\t")[1] in ("MoveLeft", "MoveRight", "MoveUp", "MoveDown")


@pytest.mark.slow
def test_video_captioning_demo_checkpoint_captions_the_clip_it_names(tmp_path, capsys):
    overrides = ("train.epochs=2", "model.temporal.hidden_dim=8", "model.decoder.hidden_dim=16")
    out = run_demo(capsys, "video-captioning", tmp_path, *overrides)
    assert (tmp_path / "run" / "best.pt").is_file() and "most-common-caption baseline" in out
    assert "colour and direction right:" in out and "knows only the generated clips" in out
    argv = printed_command(out, "caption clips with it: ")
    assert main(argv) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.split("\t")[0].endswith(".mp4") and line.split("\t")[1]


@pytest.mark.slow
def test_image_demo_says_what_its_model_knows(tmp_path, capsys):
    small = ("model.encoder.image_size=32", "model.decoder.hidden_dim=16", "train.epochs=1")
    out = run_demo(capsys, "captioning", tmp_path, *small)
    assert "knows only the generated pictures" in out and "means nothing" in out
    argv = printed_command(out, "caption images with it: ")
    assert main(argv) == 0 and capsys.readouterr().out.strip()
