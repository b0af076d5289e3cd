"""Generated video-caption datasets: coloured squares moving left or right, captioned with both, in the
MSR-VTT and MSVD layouts.

A caption names the square's colour (appearance) and its direction (motion): a model must read the
frames' content and their order to get both right.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from video_fixtures import moving_square_frames, write_frame_folder, write_video

COLOURS = {"red": (255, 40, 40), "green": (40, 255, 40), "blue": (40, 40, 255)}
DIRECTIONS = ("left", "right")


def square_clip(
    colour: str, direction: str, *, num_frames: int = 8, size: int = 32, square: int = 10, top: int = 11
) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames of a ``colour`` square sliding ``direction`` over black."""
    white = moving_square_frames(num_frames, size, size, direction, square=square, top=top)
    return (white.astype(np.float32) / 255 * np.array(COLOURS[colour], np.float32)).astype(np.uint8)


def captions_of(colour: str, direction: str) -> list[str]:
    """Two reference captions naming the colour and the direction."""
    return [f"a {colour} square moves {direction}.", f"the {colour} square is moving to the {direction}"]


@dataclass(frozen=True)
class Clip:
    """A generated clip: its id, split, colour, direction and references."""

    key: str
    split: str
    colour: str
    direction: str
    captions: list[str]


def motion_clips(
    shapes: dict[str, Sequence[tuple[int, int]]], colours: Sequence[str] = tuple(COLOURS)
) -> list[Clip]:
    """Every colour x direction for each ``(square, top)`` shape of each split (MSR-VTT split names:
    ``train`` / ``validate`` / ``test``); a left clip and its right twin hold the same frames."""
    clips = []
    for split, split_shapes in shapes.items():
        for n, (square, top) in enumerate(split_shapes):
            for colour in colours:
                for direction in DIRECTIONS:
                    key = f"{split}_{colour}_{direction}_{n}_{square}_{top}"
                    clips.append(Clip(key, split, colour, direction, captions_of(colour, direction)))
    return clips


def write_clips(
    videos: Path, clips: Sequence[Clip], *, frame_folders: bool, num_frames: int = 8, suffix: str = ".mp4"
) -> None:
    """Each clip as ``videos/<key><suffix>`` (a video file) or ``videos/<key>/`` (lossless PNG frames)."""
    for clip in clips:
        square, top = (int(v) for v in clip.key.split("_")[-2:])
        frames = square_clip(clip.colour, clip.direction, num_frames=num_frames, square=square, top=top)
        if frame_folders:
            write_frame_folder(videos / clip.key, frames, "img_{:05d}.png")
        else:
            write_video(videos / f"{clip.key}{suffix}", frames)


def msrvtt_json(clips: Sequence[Clip]) -> dict:
    """An MSR-VTT ``*_videodatainfo.json`` object for ``clips``."""
    videos = [
        {"category": 0, "url": "", "video_id": c.key, "start time": 0.0, "end time": 1.0, "split": c.split}
        for c in clips
    ]
    sentences = [
        {"caption": text, "video_id": c.key, "sen_id": i * 10 + j}
        for i, c in enumerate(clips)
        for j, text in enumerate(c.captions)
    ]
    return {"info": {"year": 2016}, "videos": videos, "sentences": sentences}


def write_msrvtt(root: Path, clips: Sequence[Clip], *, pair: bool = False) -> list[Path]:
    """One ``videodatainfo.json`` with every split, or (``pair``) the official pair
    ``train_val_videodatainfo.json`` + ``test_videodatainfo.json``. Returns the files."""
    root.mkdir(parents=True, exist_ok=True)
    if not pair:
        path = root / "videodatainfo.json"
        path.write_text(json.dumps(msrvtt_json(clips)))
        return [path]
    train_val = root / "train_val_videodatainfo.json"
    test = root / "test_videodatainfo.json"
    train_val.write_text(json.dumps(msrvtt_json([c for c in clips if c.split != "test"])))
    test.write_text(json.dumps(msrvtt_json([c for c in clips if c.split == "test"])))
    return [train_val, test]


def write_msvd(root: Path, names: Sequence[str], captions: dict[str, list[str]]) -> tuple[Path, Path]:
    """``AllVideoDescriptions.txt`` (with its comment header) and ``youtube_mapping.txt`` listing
    ``names`` in order as ``vid1``, ``vid2``, ... Returns (descriptions, mapping)."""
    root.mkdir(parents=True, exist_ok=True)
    descriptions, mapping = root / "AllVideoDescriptions.txt", root / "youtube_mapping.txt"
    lines = ["# Microsoft Research Video Description Corpus", "# <clip> <description>", ""]
    lines += [f"{name} {text}" for name in names for text in captions.get(name, [])]
    descriptions.write_text("\n".join(lines) + "\n")
    mapping.write_text("".join(f"{name} vid{i}\n" for i, name in enumerate(names, start=1)))
    return descriptions, mapping
