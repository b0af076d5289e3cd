"""CIDEr-D and ROUGE-L against hand-computed cases, the PTB tokenizer's rules, and the caption evaluator."""

from __future__ import annotations

import math

import pytest

from vision2seq.evaluation.caption_metrics import METRIC_NAMES, CaptionEvaluator, score_captions
from vision2seq.evaluation.cider import corpus_cider
from vision2seq.evaluation.ptb_tokenizer import ptb_tokenize, ptb_words
from vision2seq.evaluation.rouge import corpus_rouge_l, lcs_length, sentence_rouge_l


def _toks(text: str) -> list[str]:
    return text.split()


# --- CIDEr-D -------------------------------------------------------------------------------------------


def test_cider_perfect_match_of_two_words():
    # Two images, each candidate equal to its only reference; every n-gram has df = 1, so every weight is
    # tf * (log 2 - log 1). Orders 1 and 2 have cosine 1; orders 3 and 4 have no n-grams (0); no length
    # difference. Per image: mean([1, 1, 0, 0]) / 1 reference * 10 = 5.0.
    result = corpus_cider([_toks("a b"), _toks("c d")], [[_toks("a b")], [_toks("c d")]])
    assert result.per_image == pytest.approx([5.0, 5.0])
    assert result.score == pytest.approx(5.0)


def test_cider_clipping_and_length_penalty():
    # Image 1: candidate "a a b" vs reference "a b"; image 2: candidate "c" vs reference "c d".
    # All reference n-grams have df = 1, so idf = log 2 =: L for each.
    # Image 1, unigrams: cand a=2L, b=L (norm L*sqrt5); ref a=L, b=L (norm L*sqrt2);
    #   clipped dot = min(2L, L)*L + L*L = 2L^2 -> 2/sqrt(10).
    # Image 1, bigrams: cand "a a"=L, "a b"=L (norm L*sqrt2); ref "a b"=L (norm L)
    #   -> L^2 / (L^2 sqrt2) = 1/sqrt2.
    # Lengths are bigram counts: 2 vs 1 -> penalty exp(-1/72).
    #   Score = 10/4 * (2/sqrt10 + 1/sqrt2) * exp(-1/72).
    # Image 2, unigrams: cand c=L (norm L); ref c=L, d=L (norm L*sqrt2) -> 1/sqrt2; bigrams: the candidate has
    #   none (zero norm -> 0). Lengths 0 vs 1 -> exp(-1/72). Score = 10/4 * (1/sqrt2) * exp(-1/72).
    penalty = math.exp(-1 / 72)
    expected_1 = 10 / 4 * (2 / math.sqrt(10) + 1 / math.sqrt(2)) * penalty  # 3.30271...
    expected_2 = 10 / 4 * (1 / math.sqrt(2)) * penalty  # 1.74340...
    result = corpus_cider([_toks("a a b"), _toks("c")], [[_toks("a b")], [_toks("c d")]])
    assert result.per_image == pytest.approx([expected_1, expected_2], abs=1e-12)
    assert result.score == pytest.approx((expected_1 + expected_2) / 2, abs=1e-12)


def test_cider_single_image_is_zero_because_every_idf_is_zero():
    # log(1 image) - log(df = 1) = 0 for every n-gram: CIDEr-D is meaningless on one image.
    assert corpus_cider([_toks("a b c")], [[_toks("a b c")]]).score == 0.0


def test_cider_averages_over_references_and_counts_images_for_df():
    # Adding a duplicate reference to image 1 must not change df (it counts images), and the score is the
    # mean over references, so a duplicated reference leaves the score unchanged.
    cands = [_toks("a b"), _toks("c d")]
    single = corpus_cider(cands, [[_toks("a b")], [_toks("c d")]])
    doubled = corpus_cider(cands, [[_toks("a b"), _toks("a b")], [_toks("c d")]])
    assert doubled.per_image == pytest.approx(single.per_image)


def test_cider_empty_candidate_scores_zero_not_nan():
    result = corpus_cider([[], _toks("c d")], [[_toks("a b")], [_toks("c d")]])
    assert result.per_image[0] == 0.0


# --- ROUGE-L -------------------------------------------------------------------------------------------


def test_lcs_length():
    assert lcs_length(_toks("a b c d"), _toks("a c x d")) == 3
    assert lcs_length(_toks("a b"), []) == 0
    assert lcs_length(_toks("x y"), _toks("y x")) == 1


def test_rouge_l_takes_max_precision_and_max_recall_over_references():
    # candidate "a b c d"; ref 1 "a c d x y": LCS 3 -> P 3/4, R 3/5; ref 2 "b": LCS 1 -> P 1/4, R 1.
    # max P = 0.75 (ref 1), max R = 1.0 (ref 2): F = (1 + 1.2^2) * 0.75 * 1 / (1 + 1.2^2 * 0.75)
    #   = 2.44 * 0.75 / 2.08 = 0.87980769.
    score = sentence_rouge_l(_toks("a b c d"), [_toks("a c d x y"), _toks("b")])
    assert score == pytest.approx(2.44 * 0.75 / 2.08, abs=1e-12)


def test_rouge_l_simple_cases():
    assert sentence_rouge_l(_toks("a b c"), [_toks("a b c")]) == pytest.approx(1.0)
    assert sentence_rouge_l(_toks("a b c"), [_toks("x y")]) == 0.0
    assert sentence_rouge_l([], [_toks("x y")]) == 0.0
    result = corpus_rouge_l([_toks("a b c"), _toks("x")], [[_toks("a b c")], [_toks("y")]])
    assert result.per_image == [pytest.approx(1.0), 0.0]
    assert result.score == pytest.approx(0.5)


# --- tokenizer rules (the reference-data comparison is in test_coco_reference.py) ---------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("A man's hat.", ["a", "man", "'s", "hat"]),
        ("It doesn't fit, can't stop", ["it", "does", "n't", "fit", "ca", "n't", "stop"]),
        ("A dog cannot see", ["a", "dog", "can", "not", "see"]),
        ("A close-up of a refrigerator/freezer", ["a", "close-up", "of", "a", "refrigerator/freezer"]),
        ("Big Ben shows 1:20; a #25 shirt", ["big", "ben", "shows", "1:20", "a", "#", "25", "shirt"]),
        ("Fruit, bananas, etc. ", ["fruit", "bananas", "etc."]),
        ("Ready to bat.,", ["ready", "to", "bat."]),
        ('A sign that reads "STOP" - really?', ["a", "sign", "that", "reads", "stop", "really"]),
        ("On Morgan Rd.\n\n", ["on", "morgan", "rd."]),
        # The reference lower-cases after escaping, so its punctuation filter misses "-lrb-"/"-rrb-".
        ("A cat (black) sits", ["a", "cat", "-lrb-", "black", "-rrb-", "sits"]),
        ("", []),
        # What CoreNLP 3.4.1 does with odd text (checked against the Java tool).
        ("[stop] <here> a|b c\\d", ["-lsb-", "stop", "-rsb-", "<here>", "a", "|", "b", "c", "\\", "d"]),
        ("happy :) wink ;-) :D", ["happy", ":-rrb-", "wink", ";--rrb-", ":d"]),
        ("#sunset @user c# c++", ["#sunset", "@user", "c#", "c++"]),
        ("mail me@mail.com! now", ["mail", "me@mail.com!", "now"]),
        ("No. 5 and No. no.", ["no.", "5", "and", "no", "no"]),
        ("x² h₂o ½ cup", ["x", "²", "h", "₂", "o", "1/2", "cup"]),
        ("ภาษาไทย नमस्ते עִבְרִית", ["ภาษาไทย", "नमस्ते", "עִבְרִית"]),
        ("✓ ❤ ※ 、 。 … done", ["✓", "❤", "※", "、", "。", "done"]),
        ("emoji \U0001f600 here", ["emoji", "here"]),
        ("&lt;b&gt; &amp; a", ["<", "b", ">", "&", "a"]),
        ("he cannot go, gonna wanna", ["he", "can", "not", "go", "gon", "na", "wan", "na"]),
        ("1 1/2 cups (555) 123-4567", ["1\xa01/2", "cups", "-lrb-555-rrb-\xa0123-4567"]),
        # Line breaks inside a caption are spaces (the reference starts a new line, on the wrong image).
        ("a dog\ron\u2028grass", ["a", "dog", "on", "grass"]),
    ],
)
def test_ptb_tokenize_rules(text, tokens):
    assert ptb_tokenize(text) == tokens


def test_bleu_and_cider_split_tokens_holding_a_non_breaking_space():
    assert ptb_words(ptb_tokenize("1 1/2 cups")) == ["1", "1/2", "cups"]
    # As in the reference: ROUGE-L sees "1 1/2" as one token, BLEU as two words.
    scores = score_captions({1: "1 1/2 cups"}, {1: ["1 1/2 cups"]})
    assert scores["rouge_l"] == pytest.approx(1.0) and scores["bleu_3"] == pytest.approx(1.0)


# --- CaptionEvaluator ---------------------------------------------------------------------------------

_PREDICTIONS = {1: "A dog runs on the grass.", 2: "a cat on a sofa", 3: "two men play football"}
_REFERENCES = {
    1: ["A dog running on grass.", "The dog runs across a lawn."],
    2: ["A cat sleeping on a couch.", "A cat lies on the sofa."],
    3: ["Two men playing soccer.", "Men play football in a park.", "Two players kick a ball."],
}


def test_evaluator_incremental_updates_equal_one_update():
    whole = score_captions(_PREDICTIONS, _REFERENCES, per_image=True)
    evaluator = CaptionEvaluator()
    for key in _PREDICTIONS:
        evaluator.update({key: _PREDICTIONS[key]}, _REFERENCES)  # extra reference keys are ignored
    assert len(evaluator) == 3
    assert evaluator.compute(per_image=True) == whole
    assert set(whole) == {*METRIC_NAMES, "per_image"}
    assert set(whole["per_image"]) == {1, 2, 3}
    assert all(isinstance(whole[name], float) for name in METRIC_NAMES)


def test_evaluator_reset_and_errors():
    evaluator = CaptionEvaluator()
    with pytest.raises(ValueError, match="no captions"):
        evaluator.compute()
    evaluator.update({1: "a dog"}, {1: ["a dog"]})
    with pytest.raises(ValueError, match="already added"):
        evaluator.update({1: "a dog"}, {1: ["a dog"]})
    with pytest.raises(ValueError, match="no references"):
        evaluator.update({2: "a cat"}, {1: ["a dog"]})
    with pytest.raises(ValueError, match="non-empty list"):
        evaluator.update({2: "a cat"}, {2: "a cat"})
    assert len(evaluator) == 1  # failed batches add nothing
    evaluator.reset()
    assert len(evaluator) == 0
    evaluator.update({1: "a dog"}, {1: ["a dog"]})
    assert "per_image" not in evaluator.compute()
