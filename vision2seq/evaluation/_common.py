"""What the corpus-level caption metrics (CIDEr-D, ROUGE-L) share: their result and their input checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class CorpusScore:
    """A caption metric over a set of images.

    Attributes:
        score: Mean score over the images.
        per_image: Score of each image, in input order.
    """

    score: float
    per_image: list[float]


def check_corpus(
    candidates: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]], metric: str
) -> None:
    """Refuse inputs a corpus metric cannot score.

    Args:
        candidates: One tokenized candidate per image.
        references: For each image, its tokenized references.
        metric: The metric's name, for the messages (``"CIDEr"``, ``"ROUGE-L"``).

    Raises:
        ValueError: If the inputs differ in length, are empty, or an image has no reference.
    """
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} reference lists")
    if not candidates:
        raise ValueError(f"{metric} needs at least one candidate")
    if any(len(refs) == 0 for refs in references):
        raise ValueError(f"{metric} needs at least one reference per candidate")
