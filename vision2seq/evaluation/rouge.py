"""ROUGE-L computed the way the COCO caption evaluation (pycocoevalcap ``rouge.py``) does.

Per image: for each reference, the longest common subsequence (LCS) with the candidate gives a precision
``lcs / len(candidate)`` and a recall ``lcs / len(reference)``; the *maximum* precision and the *maximum*
recall over the references (possibly from different references) are combined into
``F = (1 + beta^2) P R / (R + beta^2 P)`` with ``beta = 1.2``. The corpus score is the mean over images.

As in the reference, which splits the joined tokens on single spaces, an empty caption counts as one empty
token (so an empty candidate scores 0).
"""

from __future__ import annotations

from collections.abc import Sequence

from vision2seq.evaluation._common import CorpusScore, check_corpus

__all__ = ["RougeResult", "corpus_rouge_l", "lcs_length", "sentence_rouge_l"]

_BETA = 1.2


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Return the length of the longest common subsequence of two token sequences.

    >>> lcs_length("a b c d".split(), "a c x d".split())
    3
    """
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)  # one DP row over the shorter sequence keeps memory O(min(len))
    for token in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if token == other else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def sentence_rouge_l(candidate: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """ROUGE-L F-score of one candidate against its references (max precision and max recall).

    Args:
        candidate: Tokenized candidate caption.
        references: Tokenized references (at least one).

    Returns:
        The score in [0, 1].

    Raises:
        ValueError: If there are no references.
    """
    if not references:
        raise ValueError("ROUGE-L needs at least one reference per candidate")
    cand = list(candidate) or [""]  # the reference sees "" as one empty token
    best_precision = best_recall = 0.0
    for reference in references:
        ref = list(reference) or [""]
        lcs = lcs_length(ref, cand)
        best_precision = max(best_precision, lcs / len(cand))
        best_recall = max(best_recall, lcs / len(ref))
    if best_precision == 0 or best_recall == 0:
        return 0.0
    return (1 + _BETA**2) * best_precision * best_recall / (best_recall + _BETA**2 * best_precision)


RougeResult = CorpusScore  # ROUGE-L over a set of images: mean and per-image scores


def corpus_rouge_l(
    candidates: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]]
) -> CorpusScore:
    """Compute ROUGE-L per image and its mean.

    Args:
        candidates: One tokenized candidate per image.
        references: For each image, its tokenized references (at least one).

    Returns:
        The mean score and the per-image scores.

    Raises:
        ValueError: If the inputs differ in length, are empty, or an image has no reference.
    """
    check_corpus(candidates, references, "ROUGE-L")
    per_image = [sentence_rouge_l(c, r) for c, r in zip(candidates, references, strict=True)]
    return CorpusScore(score=sum(per_image) / len(per_image), per_image=per_image)
