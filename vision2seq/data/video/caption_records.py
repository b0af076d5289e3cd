"""Video-caption datasets in the layouts they ship in, as (clip, reference captions) records.

* **MSR-VTT**: ``train_val_videodatainfo.json`` / ``test_videodatainfo.json`` style files:
  ``{"videos": [{"video_id", "split": train|validate|test}], "sentences": [{"video_id", "caption"}]}``;
  clips at ``<videos>/<video_id>.mp4``. One file holding all three splits, or the official pair (the
  second file's videos join the first's; every video keeps the split it names).
* **MSVD** (YouTube2Text): ``AllVideoDescriptions.txt`` (``<clip> <caption>`` lines; lines starting with
  ``#`` are comments), clips at ``<videos>/<clip>.avi``, and the id mapping file (``youtube_mapping.txt``:
  ``<clip> vid<N>`` lines) whose ids give the standard split: ``vid1``..``vid1200`` train, the next 100
  validate, the next 670 test (in line order when the file has no ``vid<N>`` ids).

A clip may also be a folder of extracted frames named like the clip without its suffix. Clip names
that would leave the ``videos`` folder are refused. Listed clips that do not exist are one error (or, with
``skip_missing``, one warning line), however many there are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vision2seq.data.captions import AnnotationError, _EmptyCaptions, read_json, safe_join
from vision2seq.data.tokenizer import tokenize
from vision2seq.data.video.datasets import read_lines

logger = logging.getLogger(__name__)

MSRVTT_SPLITS = {"train": "train", "validate": "val", "val": "val", "test": "test"}
"""MSR-VTT split names -> ours (its ``validate`` is our ``val``)."""
MSVD_SPLIT = (1200, 100, 670)
"""The standard MSVD split: train, val and test clips, in the order of the id mapping file."""
_SHOWN = 3


@dataclass
class CaptionedClip:
    """One clip with its reference captions.

    Attributes:
        key: The dataset's id of the clip (MSR-VTT ``video_id``, MSVD clip name); evaluation keys.
        path: The video file, or a folder of extracted frames.
        split: ``train``, ``val`` or ``test``.
        captions: Raw reference captions (scored as text).
        tokens: Tokenized captions (training targets).
    """

    key: str
    path: Path
    split: str
    captions: list[str]
    tokens: list[list[str]]


def clip_path(videos: Path, name: str, suffix: str, source: Path) -> Path:
    """``videos/<name><suffix>``, or the frame folder ``videos/<name>`` when only that exists.

    Raises:
        AnnotationError: ``name`` is empty, absolute, or leaves ``videos`` through ``..``.
    """
    if not name.strip():
        raise AnnotationError(f"{source}: empty clip name")
    path = safe_join(videos, name + suffix, source)
    if not path.exists() and safe_join(videos, name, source).is_dir():
        return videos / name
    return path


def _clip(key: str, path: Path, split: str, captions: list[str]) -> CaptionedClip:
    return CaptionedClip(key, path, split, captions, [tokenize(c) for c in captions])


# --- MSR-VTT -----------------------------------------------------------------------------------


def _entries(data: Any, key: str, source: Path) -> list[dict[str, Any]]:
    entries = data.get(key) if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise AnnotationError(
            f"{source}: expected an MSR-VTT file with a '{key}' list of objects "
            "(videos: video_id, split; sentences: video_id, caption)"
        )
    return entries


def _field(entry: dict[str, Any], key: str, source: Path, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise AnnotationError(f"{source}: {where} has {key} {value!r}; expected a string")
    return value


def parse_msrvtt(videos: str | Path, annotations: Sequence[str | Path]) -> list[CaptionedClip]:
    """The clips of one or more MSR-VTT files, in file order.

    Args:
        videos: Folder of the ``<video_id>.mp4`` clips.
        annotations: ``train_val_videodatainfo.json`` and optionally ``test_videodatainfo.json``, or one
            file holding every split.

    Raises:
        AnnotationError: an unreadable or malformed file, an unknown split, a video listed twice, or a
            sentence of a video no file lists.
    """
    root = Path(videos)
    splits: dict[str, str] = {}
    captions: dict[str, list[str]] = {}
    for file in map(Path, annotations):
        data = read_json(file)
        for n, video in enumerate(_entries(data, "videos", file)):
            where = f"videos[{n}]"
            key = _field(video, "video_id", file, where)
            split = MSRVTT_SPLITS.get(video.get("split"))  # type: ignore[arg-type]
            if split is None:
                raise AnnotationError(
                    f"{file}: {where} ({key}) has split {video.get('split')!r}; "
                    f"expected one of {', '.join(MSRVTT_SPLITS)}"
                )
            if key in splits:
                raise AnnotationError(f"{file}: video {key!r} is listed twice (in this or an earlier file)")
            splits[key] = split
            captions[key] = []
        for n, sentence in enumerate(_entries(data, "sentences", file)):
            where = f"sentences[{n}]"
            key = _field(sentence, "video_id", file, where)
            if key not in captions:
                raise AnnotationError(
                    f"{file}: {where} describes video {key!r}, which no annotation file lists"
                    " (pass train_val and test files together as data.annotations and data.test_annotations)"
                )
            captions[key].append(_field(sentence, "caption", file, where))
    source = Path(annotations[0])
    return _with_captions(
        [_clip(key, clip_path(root, key, ".mp4", source), splits[key], captions[key]) for key in splits],
        source,
    )


def _with_captions(clips: list[CaptionedClip], source: Path) -> list[CaptionedClip]:
    """The clips with their captions that have words; as for images, blank captions are skipped and
    reported once per file (a clip left without any is skipped, so none is scored against nothing)."""
    empty = _EmptyCaptions(source, noun="clips")
    kept, uncaptioned = [], 0
    for clip in clips:
        where = [f"clip {clip.key!r} caption {j}" for j in range(len(clip.captions))]
        captions, tokens = empty.keep(clip.captions, where)
        if captions:
            kept.append(CaptionedClip(clip.key, clip.path, clip.split, captions, tokens))
        elif not clip.captions:
            uncaptioned += 1
    empty.report()
    if uncaptioned:
        logger.warning("%s: leaving out %d clips without captions", source, uncaptioned)
    return kept


# --- MSVD --------------------------------------------------------------------------------------


def parse_msvd(
    videos: str | Path,
    descriptions: str | Path,
    mapping: str | Path,
    split_sizes: Sequence[int] = MSVD_SPLIT,
) -> list[CaptionedClip]:
    """The clips of the MSVD mapping file that have descriptions, split by the mapping file's order.

    Args:
        videos: Folder of the ``<clip>.avi`` clips.
        descriptions: ``AllVideoDescriptions.txt``.
        mapping: ``youtube_mapping.txt`` (``<clip> vid<N>`` lines); in ``vid<N>`` order (line order if
            some line has no such id) its first ``split_sizes[0]`` clips are train, the next
            ``split_sizes[1]`` val, the next ``split_sizes[2]`` test.
        split_sizes: Clips per split (the standard 1,200 / 100 / 670).

    Raises:
        AnnotationError: a missing file, a malformed line, or a mapping file with fewer clips than the
            split needs.
    """
    root, descriptions, mapping = Path(videos), Path(descriptions), Path(mapping)
    if len(split_sizes) != 3 or any(n < 0 for n in split_sizes):
        raise AnnotationError(
            f"data.msvd_split: expected three clip counts (train, val, test), got {list(split_sizes)}"
        )
    listed: dict[str, int | None] = {}
    for n, line in read_lines(mapping, "MSVD id mapping file (youtube_mapping.txt)", AnnotationError, "#"):
        name, *rest = line.split()
        if name in listed:
            raise AnnotationError(f"{mapping}:{n}: clip {name!r} is listed twice")
        number = rest[0][3:] if rest and rest[0].startswith("vid") else ""
        listed[name] = int(number) if number.isascii() and number.isdigit() else None
    order = list(listed)
    if all(v is not None for v in listed.values()):
        order.sort(key=lambda name: listed[name])  # the split is by vid<N> number
    if len(order) < sum(split_sizes):
        raise AnnotationError(
            f"{mapping}: lists {len(order)} clips, fewer than the {'+'.join(map(str, split_sizes))} of the "
            "split; pass the full mapping file, or set data.msvd_split to this dataset's counts"
        )
    captions: dict[str, list[str]] = {}
    for _, line in read_lines(
        descriptions, "MSVD descriptions file (AllVideoDescriptions.txt)", AnnotationError, "#"
    ):
        name, _, caption = line.partition(" ")
        if caption.strip():
            captions.setdefault(name, []).append(caption.strip())
    names = ["train"] * split_sizes[0] + ["val"] * split_sizes[1] + ["test"] * split_sizes[2]
    clips = [
        _clip(name, clip_path(root, name, ".avi", mapping), split, captions.get(name, []))
        for name, split in zip(order, names, strict=False)
    ]
    return _with_captions(clips, descriptions)


# --- both --------------------------------------------------------------------------------------


def detect_format(annotations: str | Path) -> str:
    """``msrvtt`` for a ``.json`` file, else ``msvd``."""
    return "msrvtt" if Path(annotations).suffix.lower() == ".json" else "msvd"


def select_splits(clips: list[CaptionedClip], splits: str | Sequence[str]) -> list[CaptionedClip]:
    """The clips whose split is one of ``splits``."""
    wanted = {splits} if isinstance(splits, str) else set(splits)
    return [c for c in clips if c.split in wanted]


def check_clips_exist(
    clips: list[CaptionedClip], source: str | Path, root: str | Path, skip_missing: bool = False
) -> list[CaptionedClip]:
    """Stop with one error counting the missing clips, or drop them with one warning (``skip_missing``)."""
    missing = [c for c in clips if not c.path.exists()]
    if not missing:
        return clips
    if not skip_missing:
        shown = ", ".join(c.path.name for c in missing[:_SHOWN])
        raise AnnotationError(
            f"{source}: {len(missing)} of {len(clips)} listed clips are missing under {root} "
            f"(first: {shown}); check data.videos, or skip them with data.skip_missing=true"
        )
    logger.warning(
        "%s: skipping %d of %d listed clips missing under %s", source, len(missing), len(clips), root
    )
    gone = {id(c) for c in missing}
    return [c for c in clips if id(c) not in gone]
