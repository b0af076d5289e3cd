"""COCO-style corpus BLEU against hand-computed cases."""

from __future__ import annotations

import math
import random

import pytest
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

from vision2seq.evaluation.bleu import corpus_bleu, ngram_counts, sentence_stats


def _toks(text: str) -> list[str]:
    return text.split()


def test_ngram_counts_all_orders():
    counts = ngram_counts(_toks("a b a b"), 2)
    assert counts[("a",)] == 2 and counts[("b",)] == 2
    assert counts[("a", "b")] == 2 and counts[("b", "a")] == 1
    assert sum(counts.values()) == 4 + 3


def test_identical_candidate_and_reference_scores_one():
    sentence = _toks("the cat sat on the mat")
    result = corpus_bleu([sentence], [[sentence]])
    # (count + 1e-15) / (count + 1e-9) is 1 - ~1e-10, not exactly 1.
    assert result.scores == pytest.approx([1.0] * 4, abs=1e-8)
    assert result.stats.as_dict() == {
        "reflen": 6,
        "testlen": 6,
        "guess": [6, 5, 4, 3],
        "correct": [6, 5, 4, 3],
    }


def test_clipping_uses_max_count_over_references():
    # candidate "a a a b"; references "a b" and "a a c".
    # unigrams: "a" x3 clipped to 2 (max over refs, from "a a c"), "b" x1 -> correct 3 of 4.
    # bigrams: "a a" x2 clipped to 1, "a b" x1 -> correct 2 of 3.
    # closest reference length to 4 is 3 ("a a c") -> ratio 4/3 >= 1, no brevity penalty.
    # BLEU-1 = 3/4 = 0.75; BLEU-2 = sqrt(3/4 * 2/3) = sqrt(0.5) = 0.70710678.
    stats = sentence_stats(_toks("a a a b"), [_toks("a b"), _toks("a a c")], max_n=2)
    assert stats.correct == [3, 2] and stats.guess == [4, 3] and stats.reflen == 3
    scores = corpus_bleu([_toks("a a a b")], [[_toks("a b"), _toks("a a c")]], max_n=2).scores
    assert scores == pytest.approx([0.75, math.sqrt(0.5)], abs=1e-9)


def test_zero_matches_give_almost_zero_not_an_error():
    # "the the the the" vs "the cat": unigram 1 of 4 (clipped), no bigram matches.
    # BLEU-1 = 0.25; BLEU-2 = sqrt(0.25 * 1e-15 / 3) ~ 9e-9 thanks to the reference's tiny smoothing.
    scores = corpus_bleu([_toks("the the the the")], [[_toks("the cat")]], max_n=2).scores
    assert scores[0] == pytest.approx(0.25, abs=1e-9)
    assert 0 < scores[1] < 1e-7


@pytest.mark.parametrize(
    ("ref_lengths", "expected"),
    [
        ((3, 7), 3),  # both 2 away from 5: the shorter wins
        ((7, 3), 3),  # order does not matter
        ((4, 7), 4),
        ((2, 6), 6),
        ((5, 9), 5),
    ],
)
def test_closest_reference_length_ties_go_to_shorter(ref_lengths, expected):
    candidate = ["w"] * 5
    references = [["x"] * n for n in ref_lengths]
    assert sentence_stats(candidate, references).reflen == expected


def test_closest_length_decides_the_brevity_penalty():
    # A 4-token candidate with references of 2 and 6 tokens: both are 2 away, the shorter wins, reflen 2,
    # so no penalty (BLEU-1 = 4/4 = 1). Choosing 6 would have given exp(1 - 6/4) = 0.6065.
    candidate = _toks("a b c d")
    refs = [_toks("a b"), _toks("a b c d e f")]
    result = corpus_bleu([candidate], [refs], max_n=1)
    assert result.stats.reflen == 2
    assert result.scores[0] == pytest.approx(1.0, abs=1e-8)


def test_brevity_penalty():
    # "a cat" vs "a cat sat on the mat": precisions 2/2 and 1/1, but testlen 2 < reflen 6:
    # BP = exp(1 - 6/2) = exp(-2) = 0.1353352832, applied to every order.
    result = corpus_bleu([_toks("a cat")], [[_toks("a cat sat on the mat")]], max_n=2)
    assert result.scores == pytest.approx([math.exp(-2), math.exp(-2)], abs=1e-9)


def test_corpus_bleu_sums_counts_instead_of_averaging_sentences():
    # sentence A: 4 of 4 unigrams correct; sentence B: 0 of 2. Corpus precision = 4/6, while the mean of
    # the sentence scores would be 0.5. testlen = reflen = 6: no penalty.
    cands = [_toks("a b c d"), _toks("x y")]
    refs = [[_toks("a b c d")], [_toks("z w")]]
    result = corpus_bleu(cands, refs, max_n=1)
    assert result.scores[0] == pytest.approx(4 / 6, abs=1e-9)
    assert result.stats.testlen == 6 and result.stats.reflen == 6
    assert result.per_sentence[0][0] == pytest.approx(1.0, abs=1e-8)
    assert result.per_sentence[1][0] < 1e-9


def test_matches_nltk_when_no_count_is_zero():
    # nltk's corpus BLEU uses the same closest-length rule and brevity penalty; without zero counts the only
    # difference is the ~1e-10 smoothing.
    rng = random.Random(0)
    vocab = ["a", "b", "c", "d"]
    cands, refs = [], []
    for _ in range(20):
        cands.append([rng.choice(vocab) for _ in range(rng.randint(5, 12))])
        refs.append(
            [[rng.choice(vocab) for _ in range(rng.randint(4, 12))] for _ in range(rng.randint(1, 4))]
        )
    ours = corpus_bleu(cands, refs).scores
    for n in range(1, 5):
        theirs = nltk_corpus_bleu(refs, cands, weights=tuple([1 / n] * n))
        assert ours[n - 1] == pytest.approx(theirs, abs=1e-8)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="reference"):
        corpus_bleu([["a"]], [[]])
    with pytest.raises(ValueError, match="candidates"):
        corpus_bleu([["a"]], [])
    with pytest.raises(ValueError, match="at least one candidate"):
        corpus_bleu([], [])
