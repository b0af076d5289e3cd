"""Caption datasets: Karpathy split JSON and COCO captions JSON, as (image, captions) records.

Karpathy files (``dataset_flickr8k.json``, ``dataset_flickr30k.json``, ``dataset_coco.json``) hold every
split: ``{"images": [{"filename", "filepath"?, "split", "sentences": [{"raw", "tokens"}]}]}``.
COCO files (``captions_train2014.json``) hold one split each: ``{"images": [{"id", "file_name"}],
"annotations": [{"image_id", "caption"}]}``; the validation file comes from ``data.val_annotations``.

Two images with the same id are an error (one of them would silently vanish from evaluation). Captions
without a word are skipped and reported once per file (an image left without captions is skipped
too), so training never learns empty sentences and no image is scored against an empty reference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vision2seq import jsonfiles
from vision2seq.data.inputs import join_inside
from vision2seq.data.tokenizer import tokenize
from vision2seq.errors import UserError, report


class AnnotationError(UserError):
    """An annotation file that is unreadable, malformed, or references images that are missing."""


@dataclass
class CaptionedImage:
    """One image with its reference captions."""

    key: str
    """Stable id (COCO id / Karpathy cocoid or imgid, else the relative path)."""
    path: Path
    captions: list[str]
    """Raw reference captions (scored as text)."""
    tokens: list[list[str]]
    """Tokenized captions (training targets)."""
    split: str


def read_json(path: str | Path) -> Any:
    """Parse a JSON file, with `AnnotationError` s that name the file and the position."""
    return jsonfiles.read_json(path, error=AnnotationError, position_sep=" ")


def load_caption_dataset(
    annotations: str | Path,
    images: str | Path,
    val_annotations: str | Path | None = None,
    val_images: str | Path | None = None,
) -> list[CaptionedImage]:
    """All images of a Karpathy file, or of a COCO train file plus its optional validation file.

    COCO images get split ``train`` (first file) or ``val`` (second file); when no validation file is
    given, a fixed 5% of the training images (by id) become ``val``. ``test`` means ``val`` for COCO.
    """
    data = read_json(annotations)
    if isinstance(data, dict) and "annotations" in data:
        records = _parse_coco(data, Path(annotations), Path(images), "train")
        if val_annotations is not None:
            records += _parse_coco(
                read_json(val_annotations), Path(val_annotations), Path(val_images or images), "val"
            )
        else:
            for i, record in enumerate(sorted(records, key=lambda r: r.key)):
                record.split = "val" if i % 20 == 19 else "train"
        return records
    if isinstance(data, dict) and "images" in data:
        return _parse_karpathy(data, Path(annotations), Path(images))
    raise AnnotationError(
        f"{annotations}: neither a Karpathy split file (top-level 'images' with 'sentences') nor a COCO "
        "captions file (top-level 'images' and 'annotations')"
    )


def select_split(records: list[CaptionedImage], splits: str | list[str]) -> list[CaptionedImage]:
    """Records whose split is in ``splits`` (``test`` falls back to ``val`` for single-split COCO files)."""
    wanted = {splits} if isinstance(splits, str) else set(splits)
    present = {r.split for r in records}
    if "test" in wanted and "test" not in present:
        wanted.add("val")
    return [r for r in records if r.split in wanted]


def check_images_exist(
    records: list[CaptionedImage], source: str | Path, skip_missing: bool = False
) -> list[CaptionedImage]:
    """Stop with one error listing how many images are missing (or drop them when ``skip_missing``)."""
    missing = [r for r in records if not r.path.is_file()]
    if missing and not skip_missing:
        first = ", ".join(str(r.path) for r in missing[:3])
        raise AnnotationError(
            f"{source}: {len(missing)} of {len(records)} referenced images are missing (e.g. {first}); "
            "check data.images, or set data.skip_missing=true to skip them"
        )
    return [r for r in records if r.path.is_file()] if missing else records


def safe_join(root: Path, relative: str, source: Path) -> Path:
    """``root / relative``, refusing paths that leave ``root`` (the one rule, ``inputs.join_inside``)."""
    return join_inside(root, relative, str(source), AnnotationError)


def _entries(data: Any, key: str, source: Path) -> list[dict[str, Any]]:
    """``data[key]`` as a list of objects, or an error naming the first entry that is not one."""
    entries = data.get(key) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise AnnotationError(f"{source}: '{key}' must be a list of objects, got {type(entries).__name__}")
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise AnnotationError(f"{source}: {key}[{n}] must be an object, got {type(entry).__name__}")
    return entries


def _text(entry: dict[str, Any], key: str, source: Path, where: str, default: str | None = None) -> str:
    """A string field, or an error naming the file, the entry and the key."""
    value = entry.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        found = "missing" if key not in entry else f"{type(value).__name__} {_short(value)}"
        raise AnnotationError(f"{source}: {where} needs '{key}' as a non-empty string ({found})")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _sentence_text(sentence: Any, source: Path, where: str) -> str:
    """A Karpathy sentence's ``raw`` text, else its ``tokens`` joined by spaces."""
    if isinstance(sentence, dict):
        raw, tokens = sentence.get("raw"), sentence.get("tokens")
        if isinstance(raw, str) and raw.strip():
            return raw
        if isinstance(tokens, list) and tokens and all(isinstance(t, str) for t in tokens):
            return " ".join(tokens)
        if isinstance(raw, str):
            return raw
    raise AnnotationError(
        f"{source}: {where} needs a 'raw' string or a 'tokens' list of strings, got {_short(sentence)}"
    )


def _image_key(value: Any, source: Path, where: str, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise AnnotationError(
            f"{source}: {where} has {name} {_short(value)}; expected an integer or a string"
        )
    return str(value)


class _EmptyCaptions:
    """Counts captions with no words (and images left with none), reported once per file."""

    def __init__(self, source: Path, noun: str = "images") -> None:
        self.source, self.captions, self.images, self.first = source, 0, 0, ""
        self.noun = noun  # what the captions describe: images, or video clips

    def keep(self, captions: list[str], where: list[str]) -> tuple[list[str], list[list[str]]]:
        """The captions that have words, and their tokens; empty ones are counted."""
        tokens = [tokenize(c) for c in captions]
        kept = [(c, t) for c, t in zip(captions, tokens, strict=True) if t]
        if len(kept) < len(captions):
            self.first = self.first or where[next(i for i, t in enumerate(tokens) if not t)]
            self.captions += len(captions) - len(kept)
            self.images += not kept
        return [c for c, _ in kept], [t for _, t in kept]

    def report(self) -> None:
        if not self.captions:
            return
        lost = f"; {self.images} {self.noun} had no other caption and are skipped" if self.images else ""
        message = f"{self.source}: skipped {self.captions} empty captions (e.g. {self.first}){lost}"
        try:  # once per file version: `train` reads the file once per split
            st = os.stat(self.source)
            seen = (str(Path(self.source).resolve()), st.st_size, st.st_mtime_ns, message)
        except OSError:
            seen = None
        if seen is None or seen not in _reported:
            _reported.add(seen)
            report(message)


_reported: set[tuple[str, int, int, str] | None] = set()


def _check_unique(keys: dict[str, str], key: str, where: str, source: Path, name: str) -> None:
    """Refuse a second image with the same id: one of the two would be dropped from evaluation."""
    if key in keys:
        raise AnnotationError(
            f"{source}: {where} has the same {name} {key!r} as {keys[key]}; every image needs its own id"
        )
    keys[key] = where


def _parse_karpathy(data: dict[str, Any], source: Path, root: Path) -> list[CaptionedImage]:
    records = []
    keys: dict[str, str] = {}
    empty = _EmptyCaptions(source)
    for n, image in enumerate(_entries(data, "images", source)):
        where = f"images[{n}]"
        filename = _text(image, "filename", source, where)
        filepath = _text(image, "filepath", source, where, default="")
        split = _text(image, "split", source, where, default="train")
        sentences = image.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            raise AnnotationError(f"{source}: {where} needs a non-empty 'sentences' list")
        captions = [_sentence_text(s, source, f"{where}.sentences[{j}]") for j, s in enumerate(sentences)]
        relative = str(Path(filepath) / filename)
        id_name = next((name for name in ("cocoid", "imgid") if name in image), None)
        key = _image_key(image[id_name], source, where, id_name) if id_name else relative
        _check_unique(keys, key, where, source, id_name or "file")
        path = safe_join(root, relative, source)
        captions, tokens = empty.keep(captions, [f"{where}.sentences[{j}]" for j in range(len(captions))])
        if captions:
            records.append(CaptionedImage(key, path, captions, tokens, split))
    empty.report()
    return records


def _parse_coco(data: Any, source: Path, root: Path, split: str) -> list[CaptionedImage]:
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise AnnotationError(f"{source}: a COCO captions file needs top-level 'images' and 'annotations'")
    files: dict[int | str, str] = {}
    keys: dict[str, str] = {}
    for n, img in enumerate(_entries(data, "images", source)):
        where = f"images[{n}]"
        if "id" not in img:
            raise AnnotationError(f"{source}: {where} has no 'id'")
        _check_unique(keys, _image_key(img["id"], source, where, "id"), where, source, "id")
        files[img["id"]] = _text(img, "file_name", source, where)
    by_image: dict[int | str, list[str]] = {}
    where_caption: dict[int | str, list[str]] = {}
    for n, ann in enumerate(_entries(data, "annotations", source)):
        where = f"annotations[{n}]"
        if "image_id" not in ann:
            raise AnnotationError(f"{source}: {where} has no 'image_id'")
        _image_key(ann["image_id"], source, where, "image_id")
        caption = ann.get("caption")
        if not isinstance(caption, str):
            raise AnnotationError(f"{source}: {where} needs a 'caption' string, got {_short(caption)}")
        by_image.setdefault(ann["image_id"], []).append(caption)
        where_caption.setdefault(ann["image_id"], []).append(where)
    unknown = set(by_image) - set(files)
    if unknown:
        raise AnnotationError(
            f"{source}: {len(unknown)} annotations refer to unknown image ids, "
            f"e.g. {sorted(unknown, key=str)[0]}"
        )
    records = []
    empty = _EmptyCaptions(source)
    for i, caps in by_image.items():
        caps, tokens = empty.keep(caps, where_caption[i])
        if caps:
            records.append(CaptionedImage(str(i), safe_join(root, files[i], source), caps, tokens, split))
    empty.report()
    return records
