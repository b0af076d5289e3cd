"""CIDEr-D computed the way the COCO caption evaluation (pycocoevalcap ``cider_scorer.py``) does.

For each image, the candidate and every reference become tf-idf vectors of their 1- to 4-grams, where the
document frequency of an n-gram is the number of *evaluated images* whose references contain it, and the idf
is ``log(number of images) - log(max(1, df))``. Per n-gram order the score is a cosine similarity in which
the candidate's weights are clipped by the reference's (``min``), multiplied by a Gaussian length penalty
``exp(-delta^2 / (2 sigma^2))`` with ``sigma = 6``; it is averaged over the orders and the references and
scaled by 10. The corpus score is the mean over images.

The length used in the penalty is, as in the reference, the number of bigrams of a caption (its length
minus one). Because the document frequencies come from the evaluated set, scores of a subset are not
comparable with scores of the whole set. A zero-norm vector (an empty caption, or a reference shorter than
the n-gram order) contributes 0 to that order, as in current pycocoevalcap, rather than NaN.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from vision2seq.evaluation._common import CorpusScore, check_corpus
from vision2seq.evaluation.bleu import ngram_counts

__all__ = ["CiderResult", "corpus_cider"]

_MAX_N = 4
_SIGMA = 6.0


@dataclass
class _Vector:
    """tf-idf weights per n-gram order, their Euclidean norms, and the caption length used for the penalty."""

    weights: list[dict[tuple[str, ...], float]]
    norms: list[float]
    length: int


def _to_vector(
    counts: Counter[tuple[str, ...]], doc_freq: dict[tuple[str, ...], float], log_num_images: float
) -> _Vector:
    weights: list[dict[tuple[str, ...], float]] = [{} for _ in range(_MAX_N)]
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


CiderResult = CorpusScore  # CIDEr-D over a set of images: mean and per-image scores


def corpus_cider(
    candidates: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]]
) -> CorpusScore:
    """Compute CIDEr-D of tokenized candidates against tokenized references.

    Args:
        candidates: One tokenized candidate per image.
        references: For each image, its tokenized references (at least one).

    Returns:
        The corpus (mean) score and the per-image scores.

    Raises:
        ValueError: If the inputs differ in length, are empty, or an image has no reference.
    """
    check_corpus(candidates, references, "CIDEr")
    ref_counts = [[ngram_counts(ref, _MAX_N) for ref in refs] for refs in references]
    doc_freq: dict[tuple[str, ...], float] = defaultdict(float)
    for counts_of_image in ref_counts:
        for ngram in set().union(*counts_of_image):
            doc_freq[ngram] += 1
    log_num_images = math.log(float(len(candidates)))

    per_image = []
    for candidate, counts_of_image in zip(candidates, ref_counts, strict=True):
        vec = _to_vector(ngram_counts(candidate, _MAX_N), doc_freq, log_num_images)
        totals = [0.0] * _MAX_N
        for counts in counts_of_image:
            sims = _similarity(vec, _to_vector(counts, doc_freq, log_num_images))
            totals = [t + s for t, s in zip(totals, sims, strict=True)]
        # Mean over n-gram orders, then over references, times 10 (the reference's order of operations).
        per_image.append(sum(totals) / _MAX_N / len(counts_of_image) * 10.0)
    return CorpusScore(score=sum(per_image) / len(per_image), per_image=per_image)
