"""Readers for caption files: COCO results, COCO caption annotations and Karpathy split JSON.

Every problem with a file raises :class:`vision2seq.errors.UserError` with a one-line message that names the
file and what is wrong, so the command line can print it instead of a traceback.

Keys: COCO files are keyed by their ``image_id``; an id written in decimal digits is the same image whatever
its spelling (``270``, ``"270"`` and ``"0270"`` are image 270), other strings stay strings (MSR-VTT's
``"video123"``). Karpathy files are keyed by ``cocoid`` when every
image of the split has one (COCO), otherwise by ``filename`` (Flickr8k/30k). :func:`align_references` then
matches results to references and also accepts a result ``image_id`` that names a Karpathy image by its file
name, its file stem (``"1000092795"`` or ``1000092795`` for ``1000092795.jpg``) or the number at the end of
its stem (``391895`` for ``COCO_val2014_000000391895.jpg``).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vision2seq.errors import UserError
from vision2seq.jsonfiles import read_json

__all__ = [
    "align_references",
    "load_coco_references",
    "load_coco_results",
    "load_karpathy_references",
    "normalize_image_id",
]

ImageKey = Hashable

_MAX_LISTED = 5  # how many offending keys a message names before "..."


def _listed(keys: list[Any]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_MAX_LISTED])
    return shown + (", ..." if len(keys) > _MAX_LISTED else "")


def normalize_image_id(value: int | str) -> int | str:
    """One spelling per image id: a string of decimal digits becomes its integer, other strings stay.

    >>> normalize_image_id("0270"), normalize_image_id(270), normalize_image_id("video123")
    (270, 270, 'video123')
    """
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value


def _image_id(value: Any, path: Path, where: str) -> int | str:
    # bool is an int subclass; a true/false id is a broken file, not image 1/0.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UserError(f"{path}: {where} has image_id {value!r}; expected an integer or a string")
    return normalize_image_id(value)


def _caption(value: Any, path: Path, where: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{path}: {where} has caption {value!r}; expected a string")
    return value


def load_coco_results(path: str | Path) -> dict[int | str, str]:
    """Read a COCO results file: a JSON list of ``{"image_id": ..., "caption": ...}``.

    Args:
        path: The results file.

    Returns:
        The caption of each image, keyed by ``image_id``.

    Raises:
        UserError: If the file is missing, is not valid JSON, is not a list of such objects, or names an
            image twice (the COCO evaluation scores exactly one caption per image).
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, list):
        kind = (
            f"an object with keys {_listed(sorted(data))}" if isinstance(data, dict) else type(data).__name__
        )
        raise UserError(
            f'{path}: expected a list of {{"image_id", "caption"}} objects (COCO results), got {kind}'
        )
    results: dict[int | str, str] = {}
    spelled: dict[int | str, Any] = {}  # the id as first written, for the message about a repeat
    for i, entry in enumerate(data):
        where = f"entry {i}"
        if not isinstance(entry, dict):
            raise UserError(f"{path}: {where} is {type(entry).__name__}, expected an object")
        for key in ("image_id", "caption"):
            if key not in entry:
                raise UserError(f'{path}: {where} has no "{key}" key')
        image_id = _image_id(entry["image_id"], path, where)
        if image_id in results:
            first = spelled[image_id]
            also = "" if first == entry["image_id"] else f" (as {first!r} and {entry['image_id']!r})"
            raise UserError(
                f"{path}: image_id {first!r} appears more than once{also}; give one caption per image"
            )
        spelled[image_id] = entry["image_id"]
        results[image_id] = _caption(entry["caption"], path, where)
    if not results:
        raise UserError(f"{path}: contains no results")
    return results


def load_coco_references(path: str | Path) -> dict[int | str, list[str]]:
    """Read reference captions from a COCO captions annotation file (``{"annotations": [...]}``).

    Args:
        path: The annotation file, e.g. ``captions_val2014.json``.

    Returns:
        The reference captions of each image, keyed by ``image_id``, in file order.

    Raises:
        UserError: If the file is missing, is not valid JSON, or has no usable ``annotations`` list.
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or "annotations" not in data:
        raise UserError(f'{path}: expected a COCO annotation object with an "annotations" list')
    annotations = data["annotations"]
    if not isinstance(annotations, list):
        raise UserError(f'{path}: "annotations" is {type(annotations).__name__}, expected a list')
    references: dict[int | str, list[str]] = {}
    for i, ann in enumerate(annotations):
        where = f"annotation {i}"
        if not isinstance(ann, dict):
            raise UserError(f"{path}: {where} is {type(ann).__name__}, expected an object")
        for key in ("image_id", "caption"):
            if key not in ann:
                raise UserError(f'{path}: {where} has no "{key}" key (is this a captions annotation file?)')
        image_id = _image_id(ann["image_id"], path, where)
        references.setdefault(image_id, []).append(_caption(ann["caption"], path, where))
    if not references:
        raise UserError(f'{path}: "annotations" is empty')
    return references


def load_karpathy_references(path: str | Path, split: str) -> dict[int | str, list[str]]:
    """Read the reference captions of one split of a Karpathy JSON file (``dataset_coco.json`` etc.).

    Args:
        path: The Karpathy file: ``{"images": [{"filename", "split", "cocoid"?, "sentences": [...]}]}``.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"restval"``.

    Returns:
        The references of each image of the split, keyed by ``cocoid`` if every image of the split has one,
        otherwise by ``filename``. A sentence's ``raw`` text is used, or its ``tokens`` joined by spaces.

    Raises:
        UserError: If the file is malformed, the split has no images (the message lists the splits that
            exist), or keys repeat.
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UserError(f'{path}: expected a Karpathy split object with an "images" list')
    chosen: list[tuple[int, dict[str, Any]]] = []
    splits: set[str] = set()
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "split" not in image:
            raise UserError(f'{path}: image {i} is not an object with a "split" key')
        splits.add(str(image["split"]))
        if image["split"] == split:
            chosen.append((i, image))
    if not chosen:
        raise UserError(f"{path}: no images in split {split!r}; the file has splits {sorted(splits)}")

    use_cocoid = all("cocoid" in image for _, image in chosen)
    references: dict[int | str, list[str]] = {}
    for i, image in chosen:
        where = f"image {i}"
        if not use_cocoid and "filename" not in image:
            raise UserError(f'{path}: {where} has neither "cocoid" nor "filename"')
        key = _image_id(image["cocoid"] if use_cocoid else image["filename"], path, where)
        if key in references:
            raise UserError(f"{path}: {where} repeats key {key!r} in split {split!r}")
        sentences = image.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            raise UserError(f'{path}: {where} has no "sentences" list')
        captions = []
        for j, sentence in enumerate(sentences):
            if isinstance(sentence, dict) and isinstance(sentence.get("raw"), str):
                captions.append(sentence["raw"])
            elif isinstance(sentence, dict) and isinstance(sentence.get("tokens"), list):
                captions.append(" ".join(str(t) for t in sentence["tokens"]))
            else:
                raise UserError(f'{path}: {where}, sentence {j} has neither "raw" text nor "tokens"')
        references[key] = captions
    return references


def _aliases(key: ImageKey) -> list[ImageKey]:
    """Other spellings of a reference key that a results file may use for the same image."""
    if not isinstance(key, str):
        return [str(key)]
    names: list[ImageKey] = [Path(key).name, Path(key).stem]
    digits = re.search(r"(\d+)$", Path(key).stem)
    if digits:
        names.append(int(digits.group(1)))
    return names


def align_references(
    results: Mapping[ImageKey, str],
    references: Mapping[ImageKey, list[str]],
    results_path: str | Path = "results",
    references_path: str | Path = "references",
) -> dict[ImageKey, list[str]]:
    """Pick the references of each result's image, keyed like the results.

    A result key is looked up as is, then among the aliases of the reference keys (file name, file stem,
    trailing number of the stem, and the string form of integer ids).

    Args:
        results: Predicted caption per image, e.g. from :func:`load_coco_results`.
        references: Reference captions per image, e.g. from :func:`load_coco_references`.
        results_path: Named in error messages.
        references_path: Named in error messages.

    Returns:
        For every result key, its reference captions.

    Raises:
        UserError: If some results have no references (the message names both files and a few of the
            keys), or an alias is ambiguous.
    """
    alias_index: dict[ImageKey, ImageKey] = {}
    ambiguous: set[ImageKey] = set()
    for ref_key in references:
        for alias in _aliases(ref_key):
            if alias in references:
                continue  # an exact key always wins over an alias
            if alias_index.get(alias, ref_key) != ref_key:
                ambiguous.add(alias)
            alias_index[alias] = ref_key

    aligned: dict[ImageKey, list[str]] = {}
    missing: list[ImageKey] = []
    for key in results:
        if key in references:
            aligned[key] = list(references[key])
            continue
        if isinstance(key, str) and key.isdecimal() and int(key) in references:
            aligned[key] = list(references[int(key)])
            continue
        if key in ambiguous:
            raise UserError(f"{results_path}: image_id {key!r} matches several images of {references_path}")
        if key in alias_index:
            aligned[key] = list(references[alias_index[key]])
        else:
            missing.append(key)
    if missing:
        raise UserError(
            f"{results_path}: {len(missing)} of {len(results)} predicted images have no references in "
            f"{references_path} (e.g. image_id {_listed(missing)})"
        )
    return aligned


def score_caption_files(
    predictions: str | Path,
    references: str | Path,
    split: str = "test",
    per_image: bool = False,
    metrics: str | Sequence[str] | None = None,
) -> dict:
    """Score a COCO results file against COCO annotations or one split of a Karpathy JSON file.

    Args:
        predictions: COCO results JSON (a list of ``{"image_id", "caption"}``).
        references: COCO captions annotations, or a Karpathy split file (then ``split`` is used).
        split: The Karpathy split holding the references.
        per_image: Also return the scores of every image under ``per_image``.
        metrics: Which metrics (see :func:`vision2seq.evaluation.caption_metrics.resolve_metrics`); by default
            BLEU-1..4, ROUGE-L and CIDEr-D.

    Returns:
        The metrics' scores (and ``per_image``).
    """
    from vision2seq.evaluation.caption_metrics import DEFAULT_METRICS, score_captions

    results = load_coco_results(predictions)
    data = read_json(references)
    if isinstance(data, dict) and "annotations" in data:
        refs = load_coco_references(references)
    else:
        refs = load_karpathy_references(references, split)
    return score_captions(
        results,
        align_references(results, refs, predictions, references),
        per_image=per_image,
        metrics=DEFAULT_METRICS if metrics is None else metrics,
    )
