"""Caption datasets: Karpathy split JSON and COCO captions JSON, as (image, captions) records.

Karpathy files (``dataset_flickr8k.json``, ``dataset_flickr30k.json``, ``dataset_coco.json``) hold every
split: ``{"images": [{"filename", "filepath"?, "split", "sentences": [{"raw", "tokens"}]}]}``.
COCO files (``captions_train2014.json``) hold one split each: ``{"images": [{"id", "file_name"}],
"annotations": [{"image_id", "caption"}]}``; the validation file comes from ``data.val_annotations``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vision2seq.data.tokenizer import tokenize
from vision2seq.errors import UserError


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
    """Parse a JSON file, with errors that name the file and the position."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise AnnotationError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise AnnotationError(
            f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: cannot read ({exc})") from None


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
    """``root / relative``, refusing absolute paths and ``..`` that would escape ``root``."""
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise AnnotationError(f"{source}: path {relative!r} escapes the dataset root {root}")
    return root / rel


def _parse_karpathy(data: dict[str, Any], source: Path, root: Path) -> list[CaptionedImage]:
    records = []
    for n, image in enumerate(data["images"]):
        where = f"images[{n}]"
        try:
            filename = image["filename"]
            sentences = image["sentences"]
            split = image.get("split", "train")
        except (KeyError, TypeError):
            raise AnnotationError(f"{source}: {where} needs 'filename' and 'sentences'") from None
        relative = str(Path(image.get("filepath", "")) / filename)
        captions, tokens = [], []
        for sentence in sentences:
            if not isinstance(sentence, dict) or not ("raw" in sentence or "tokens" in sentence):
                raise AnnotationError(f"{source}: {where}.sentences needs 'raw' or 'tokens' entries")
            raw = sentence.get("raw") or " ".join(sentence["tokens"])
            captions.append(raw)
            tokens.append(tokenize(raw))
        key = image.get("cocoid", image.get("imgid", relative))
        records.append(CaptionedImage(str(key), safe_join(root, relative, source), captions, tokens, split))
    return records


def _parse_coco(data: Any, source: Path, root: Path, split: str) -> list[CaptionedImage]:
    try:
        files = {img["id"]: img["file_name"] for img in data["images"]}
        by_image: dict[Any, list[str]] = {}
        for ann in data["annotations"]:
            by_image.setdefault(ann["image_id"], []).append(ann["caption"])
    except (KeyError, TypeError) as exc:
        raise AnnotationError(
            f"{source}: COCO captions file needs images[].id/file_name and annotations[].image_id/caption "
            f"(missing {exc})"
        ) from None
    unknown = set(by_image) - set(files)
    if unknown:
        raise AnnotationError(
            f"{source}: {len(unknown)} annotations refer to unknown image ids, "
            f"e.g. {sorted(unknown, key=str)[0]}"
        )
    return [
        CaptionedImage(str(i), safe_join(root, files[i], source), caps, [tokenize(c) for c in caps], split)
        for i, caps in by_image.items()
    ]
