"""CIDEr-D computed the way the COCO caption evaluation (pycocoevalcap ``cider_scorer.py``) does.

For each image, the candidate and every reference become tf-idf vectors of their 1- to 4-grams, where the
document frequency of an n-gram is the number of *evaluated images* whose references contain it, and the idf
is ``log(number of images) - log(max(1, df))``. Per n-gram order the score is a cosine similarity in which
the candidate's weights are clipped by the reference's (``min``), multiplied by a Gaussian length penalty
``exp(-delta^2 / (2 sigma^2))`` with ``sigma = 6``; it is averaged over the orders and the references and
scaled by 10. The corpus score is the mean over images.

The length used in the penalty is, as in the reference, the number of bigrams of a caption (its length
minus one). Because the document frequencies come from the evaluated set, scores of a subset are not
comparable with scores of the whole set. ``CiderD`` fixes the document frequencies once, from a reference
corpus (as self-critical training does with the training references), so that a caption's score does not
depend on what else is scored with it. A zero-norm vector (an empty caption, or a reference shorter than
the n-gram order) contributes 0 to that order, as in current pycocoevalcap, rather than NaN.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from vision2seq.evaluation._common import CorpusScore, check_corpus
from vision2seq.evaluation.bleu import ngram_counts

__all__ = ["CiderD", "CiderResult", "corpus_cider"]

_MAX_N = 4
_SIGMA = 6.0


@dataclass
class _Vector:
    """tf-idf weights per n-gram order, their Euclidean norms, and the caption length used for the penalty."""

    weights: list[dict[tuple[Hashable, ...], float]]
    norms: list[float]
    length: int


def _to_vector(
    counts: Counter[tuple[Hashable, ...]], doc_freq: dict[tuple[Hashable, ...], float], log_num_images: float
) -> _Vector:
    weights: list[dict[tuple[Hashable, ...], float]] = [{} for _ in range(_MAX_N)]
    squared = [0.0] * _MAX_N
    length = 0
    for ngram, tf in counts.items():
        order = len(ngram) - 1
        weight = float(tf) * (log_num_images - math.log(max(1.0, doc_freq.get(ngram, 0.0))))
        weights[order][ngram] = weight
        squared[order] += weight**2
        if order == 1:
            length += tf  # the reference counts bigrams here, so "length" is len(caption) - 1
    return _Vector(weights=weights, norms=[math.sqrt(s) for s in squared], length=length)


def _similarity(candidate: _Vector, reference: _Vector) -> list[float]:
    delta = float(candidate.length - reference.length)
    penalty = math.e ** (-(delta**2) / (2 * _SIGMA**2))
    values = []
    for order in range(_MAX_N):
        ref_weights = reference.weights[order]
        value = 0.0
        for ngram, weight in candidate.weights[order].items():
            ref_weight = ref_weights.get(ngram, 0.0)
            value += min(weight, ref_weight) * ref_weight  # CIDEr-D clips the candidate's weight
        if candidate.norms[order] != 0 and reference.norms[order] != 0:
            value /= candidate.norms[order] * reference.norms[order]
        values.append(value * penalty)
    return values


class CiderD:
    """CIDEr-D of candidates against the references of their image, with document frequencies fixed by
    ``references``: an n-gram's is the number of images whose references contain it.

    Tokens may be any hashable values (words, or token ids as self-critical training scores them); a
    candidate and its references must use the same ones.

    Args:
        references: Per image key, its tokenized references (at least one each).

    Raises:
        ValueError: If there are no images, or an image has no reference.
    """

    def __init__(self, references: Mapping[Hashable, Sequence[Sequence[Hashable]]]) -> None:
        if not references:
            raise ValueError("CIDEr-D needs references of at least one image, got none")
        self._counts = {key: [ngram_counts(ref, _MAX_N) for ref in refs] for key, refs in references.items()}
        for key, counts in self._counts.items():
            if not counts:
                raise ValueError(f"image {key!r} has no reference")
        doc_freq: dict[tuple[Hashable, ...], float] = defaultdict(float)
        for counts_of_image in self._counts.values():
            for ngram in set().union(*counts_of_image):
                doc_freq[ngram] += 1
        self._doc_freq = dict(doc_freq)
        self._log_images = math.log(float(len(self._counts)))
        self._vectors: dict[Hashable, list[_Vector]] = {}  # reference tf-idf vectors, made on first use

    def __contains__(self, key: Hashable) -> bool:
        return key in self._counts

    def __call__(self, key: Hashable, candidate: Sequence[Hashable]) -> float:
        """CIDEr-D of one tokenized ``candidate`` of image ``key``.

        Raises:
            KeyError: If ``key`` is not among the references.
        """
        if key not in self._vectors:
            if key not in self._counts:
                raise KeyError(f"image {key!r} is not among the references the scorer was built from")
            self._vectors[key] = [self._vector(c) for c in self._counts[key]]
        refs = self._vectors[key]
        vector = self._vector(ngram_counts(candidate, _MAX_N))
        totals = [0.0] * _MAX_N
        for ref in refs:
            totals = [t + s for t, s in zip(totals, _similarity(vector, ref), strict=True)]
        # Mean over n-gram orders, then over references, times 10 (the reference's order of operations).
        return sum(totals) / _MAX_N / len(refs) * 10.0

    def _vector(self, counts: Counter[tuple[Hashable, ...]]) -> _Vector:
        return _to_vector(counts, self._doc_freq, self._log_images)


CiderResult = CorpusScore  # CIDEr-D over a set of images: mean and per-image scores


def corpus_cider(
    candidates: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]]
) -> CorpusScore:
    """Compute CIDEr-D of tokenized candidates against tokenized references.

    The document frequencies are those of the evaluated images' references.

    Args:
        candidates: One tokenized candidate per image.
        references: For each image, its tokenized references (at least one).

    Returns:
        The corpus (mean) score and the per-image scores.

    Raises:
        ValueError: If the inputs differ in length, are empty, or an image has no reference.
    """
    check_corpus(candidates, references, "CIDEr")
    scorer = CiderD(dict(enumerate(references)))
    per_image = [scorer(i, candidate) for i, candidate in enumerate(candidates)]
    return CorpusScore(score=sum(per_image) / len(per_image), per_image=per_image)
