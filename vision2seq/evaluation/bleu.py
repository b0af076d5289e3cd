"""Corpus BLEU-1..4 computed the way the COCO caption evaluation (coco-caption ``bleu_scorer.py``) does.

The COCO variant differs from textbook BLEU in ways that move the numbers by up to a few 1e-3:

* the effective reference length of a caption is the *closest* reference length (ties go to the shorter);
* precisions are smoothed as ``(correct + 1e-15) / (guess + 1e-9)`` so that a zero count gives ~0, not an
  error, and the length ratio as ``(testlen + 1e-15) / (reflen + 1e-9)``;
* the brevity penalty ``exp(1 - reflen / testlen)`` uses corpus totals and applies only when the candidates
  are shorter than the references overall.

Inputs are already-tokenized captions (see :func:`vision2seq.evaluation.ptb_tokenizer.ptb_tokenize`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["BleuResult", "NgramStats", "corpus_bleu", "ngram_counts", "sentence_stats"]

# The reference's smoothing constants: the numerator's keeps a zero count at (almost) zero precision.
_TINY = 1e-15
_SMALL = 1e-9


def ngram_counts(tokens: Sequence[str], max_n: int) -> Counter[tuple[str, ...]]:
    """Count every n-gram of ``tokens`` with 1 <= n <= ``max_n``.

    Args:
        tokens: One tokenized caption.
        max_n: Longest n-gram to count.

    Returns:
        A counter keyed by n-gram tuples of all orders together.
    """
    counts: Counter[tuple[str, ...]] = Counter()
    for n in range(1, max_n + 1):
        for i in range(len(tokens) - n + 1):
            counts[tuple(tokens[i : i + n])] += 1
    return counts


@dataclass
class NgramStats:
    """Clipped n-gram statistics of one caption or, summed, of a corpus (the reference's ``totalcomps``).

    Attributes:
        testlen: Candidate length in tokens.
        reflen: Effective reference length (closest reference length; summed over a corpus).
        guess: Candidate n-gram counts for n = 1..max_n.
        correct: Candidate n-grams that also occur in a reference, clipped by the largest count in any one
            reference, for n = 1..max_n.
    """

    testlen: int = 0
    reflen: int = 0
    guess: list[int] = field(default_factory=list)
    correct: list[int] = field(default_factory=list)

    def __iadd__(self, other: NgramStats) -> NgramStats:
        if not self.guess:
            self.guess = [0] * len(other.guess)
            self.correct = [0] * len(other.correct)
        self.testlen += other.testlen
        self.reflen += other.reflen
        self.guess = [a + b for a, b in zip(self.guess, other.guess, strict=True)]
        self.correct = [a + b for a, b in zip(self.correct, other.correct, strict=True)]
        return self

    def as_dict(self) -> dict[str, int | list[int]]:
        """Return the statistics in the reference's printed form (``reflen``, ``testlen``, ...)."""
        return {"reflen": self.reflen, "testlen": self.testlen, "guess": self.guess, "correct": self.correct}


def sentence_stats(
    candidate: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4
) -> NgramStats:
    """Compute the clipped n-gram statistics of one candidate against its references.

    Args:
        candidate: Tokenized candidate caption.
        references: Tokenized reference captions (at least one).
        max_n: Longest n-gram order.

    Returns:
        The caption's statistics, with ``reflen`` the reference length closest to the candidate's length
        (the shorter one on a tie).

    Raises:
        ValueError: If there are no references.
    """
    if not references:
        raise ValueError("BLEU needs at least one reference per candidate")
    max_ref_counts: Counter[tuple[str, ...]] = Counter()
    for ref in references:
        max_ref_counts |= ngram_counts(ref, max_n)  # `|` keeps the per-n-gram maximum
    testlen = len(candidate)
    reflen = min((abs(len(ref) - testlen), len(ref)) for ref in references)[1]
    guess = [max(0, testlen - n + 1) for n in range(1, max_n + 1)]
    correct = [0] * max_n
    for ngram, count in ngram_counts(candidate, max_n).items():
        correct[len(ngram) - 1] += min(count, max_ref_counts[ngram])
    return NgramStats(testlen=testlen, reflen=reflen, guess=guess, correct=correct)


def _bleu_from_stats(stats: NgramStats, max_n: int) -> list[float]:
    """BLEU-1..max_n with the reference's smoothing and brevity penalty from (summed) statistics."""
    ratio = (stats.testlen + _TINY) / (stats.reflen + _SMALL)
    penalty = math.exp(1 - 1 / ratio) if ratio < 1 else 1.0
    scores = []
    product = 1.0
    for k in range(max_n):
        product *= (stats.correct[k] + _TINY) / (stats.guess[k] + _SMALL)
        scores.append(product ** (1 / (k + 1)) * penalty)
    return scores


@dataclass
class BleuResult:
    """Corpus BLEU with the statistics it came from.

    Attributes:
        scores: Corpus BLEU-1..max_n.
        stats: Corpus totals of the n-gram statistics.
        per_sentence: Per-caption BLEU-1..max_n (same smoothing, each caption's own brevity penalty), in
            input order.
    """

    scores: list[float]
    stats: NgramStats
    per_sentence: list[list[float]]


def corpus_bleu(
    candidates: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]], max_n: int = 4
) -> BleuResult:
    """Compute COCO-style corpus BLEU-1..max_n.

    Args:
        candidates: One tokenized candidate per image.
        references: For each image, its tokenized references (at least one).
        max_n: Longest n-gram order.

    Returns:
        Corpus scores, summed statistics and per-caption scores.

    Raises:
        ValueError: If the inputs differ in length, are empty, or an image has no reference.

    >>> [round(s, 6) for s in corpus_bleu([["a", "cat"]], [[["a", "cat"]]], max_n=2).scores]
    [1.0, 1.0]
    """
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} reference lists")
    if not candidates:
        raise ValueError("BLEU needs at least one candidate")
    total = NgramStats(guess=[0] * max_n, correct=[0] * max_n)
    per_sentence = []
    for candidate, refs in zip(candidates, references, strict=True):
        stats = sentence_stats(candidate, refs, max_n)
        total += stats
        per_sentence.append(_bleu_from_stats(stats, max_n))
    return BleuResult(scores=_bleu_from_stats(total, max_n), stats=total, per_sentence=per_sentence)
