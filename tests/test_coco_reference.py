"""Reproduce the reference COCO caption evaluation numbers from raw captions; COCO/Karpathy file readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vision2seq.errors import UserError
from vision2seq.evaluation.bleu import corpus_bleu
from vision2seq.evaluation.caption_metrics import CaptionEvaluator, score_captions
from vision2seq.evaluation.coco_files import (
    align_references,
    load_coco_references,
    load_coco_results,
    load_karpathy_references,
)
from vision2seq.evaluation.ptb_tokenizer import ptb_tokenize

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco_caption_eval"
ANNOTATIONS = DATA / "en_captions_val2014.json"
RESULTS = DATA / "en_captions_val2014_fakecap_results.json"

needs_data = pytest.mark.skipif(
    not ANNOTATIONS.is_file(), reason=f"reference COCO caption data not found at {DATA.resolve()}"
)

# What coco-caption prints for the fakecap results (see ../shared/data/README.md).
REFERENCE_SCORES = {"bleu_1": 0.5794, "bleu_2": 0.4044, "bleu_3": 0.2785, "bleu_4": 0.1908, "cider": 0.5998}
REFERENCE_STATS = {
    "reflen": 9855,
    "testlen": 9893,
    "guess": [9893, 8893, 7893, 6893],
    "correct": [5732, 2510, 1043, 423],
}


@pytest.fixture(scope="module")
def coco():
    results = load_coco_results(RESULTS)
    references = align_references(results, load_coco_references(ANNOTATIONS), RESULTS, ANNOTATIONS)
    return results, references


@pytest.fixture(scope="module")
def coco_scores(coco):
    results, references = coco
    return score_captions(results, references)


@needs_data
def test_tokenizer_matches_reference_tokenization(coco):
    results, references = coco
    expected_refs = json.loads((DATA / "en_captions_val2014_references_after_tokenization.json").read_text())
    expected_res = json.loads((DATA / "en_captions_val2014_results_after_tokenization.json").read_text())
    pairs = [
        (raw, tok)
        for key, toks in expected_refs.items()
        for raw, tok in zip(references[int(key)], toks, strict=True)
    ]
    pairs += [(results[int(key)], toks[0]) for key, toks in expected_res.items()]
    assert len(pairs) == 5005 + 1000
    mismatches = [(raw, tok) for raw, tok in pairs if " ".join(ptb_tokenize(raw)) != tok]
    # Every one of the 6,005 captions is tokenized exactly as the Java PTB tokenizer did.
    assert mismatches == []


@needs_data
def test_scores_reproduce_reference(coco_scores):
    scores = coco_scores
    for name, reference in REFERENCE_SCORES.items():
        assert abs(scores[name] - reference) < 0.002, name
        assert round(scores[name], 4) == reference, name  # in fact equal to every printed digit
    # coco-caption's demo also prints ROUGE_L 0.396 for these results.
    assert abs(scores["rouge_l"] - 0.396) < 5e-4


@needs_data
def test_ngram_statistics_reproduce_reference_exactly(coco):
    results, references = coco
    keys = list(results)
    bleu = corpus_bleu(
        [ptb_tokenize(results[k]) for k in keys], [[ptb_tokenize(r) for r in references[k]] for k in keys]
    )
    assert bleu.stats.as_dict() == REFERENCE_STATS


@needs_data
def test_batched_updates_give_the_same_scores(coco, coco_scores):
    results, references = coco
    keys = list(results)
    evaluator = CaptionEvaluator()
    for start in range(0, len(keys), 64):
        batch = {k: results[k] for k in keys[start : start + 64]}
        evaluator.update(batch, {k: references[k] for k in batch})
    assert evaluator.compute() == coco_scores


# --- file readers ---------------------------------------------------------------------------------------


def _write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_load_coco_results_and_references(tmp_path):
    res = _write(
        tmp_path / "res.json", [{"image_id": 1, "caption": "a dog"}, {"image_id": 2, "caption": "a cat"}]
    )
    ann = _write(
        tmp_path / "ann.json",
        {
            "annotations": [
                {"image_id": 1, "caption": "A dog."},
                {"image_id": 2, "caption": "A cat."},
                {"image_id": 1, "caption": "Dog."},
                {"image_id": 3, "caption": "Bird."},
            ]
        },
    )
    results, references = load_coco_results(res), load_coco_references(ann)
    assert results == {1: "a dog", 2: "a cat"}
    assert references == {1: ["A dog.", "Dog."], 2: ["A cat."], 3: ["Bird."]}
    assert align_references(results, references, res, ann) == {1: ["A dog.", "Dog."], 2: ["A cat."]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"image_id": 1, "caption": "a"}\n  {"image_id": 2}]', r"malformed JSON at line 2, column 3"),
        ('{"annotations": []}', r"expected a list"),
        ('[{"image_id": 1}]', r'entry 0 has no "caption" key'),
        ('[{"image_id": 1, "caption": 5}]', r"entry 0 has caption 5; expected a string"),
        (
            '[{"image_id": 1, "caption": "a"}, {"image_id": 1, "caption": "b"}]',
            r"image_id 1 appears more than once",
        ),
        ("[]", r"contains no results"),
    ],
)
def test_load_coco_results_errors_name_file_and_problem(tmp_path, content, message):
    path = _write(tmp_path / "res.json", content)
    with pytest.raises(UserError, match=message) as info:
        load_coco_results(path)
    assert str(path) in str(info.value)


def test_load_coco_references_errors(tmp_path):
    with pytest.raises(UserError, match=r"missing\.json: file not found"):
        load_coco_references(tmp_path / "missing.json")
    path = _write(tmp_path / "inst.json", {"annotations": [{"image_id": 1, "bbox": [0, 0, 1, 1]}]})
    with pytest.raises(UserError, match=r'annotation 0 has no "caption" key'):
        load_coco_references(path)
    path = _write(tmp_path / "list.json", [])
    with pytest.raises(UserError, match=r'"annotations" list'):
        load_coco_references(path)


def test_align_references_reports_predictions_without_references(tmp_path):
    with pytest.raises(
        UserError, match=r"res\.json: 2 of 3 predicted images have no references in .*ann\.json"
    ) as info:
        align_references({1: "a", 7: "b", 8: "c"}, {1: ["x"]}, tmp_path / "res.json", tmp_path / "ann.json")
    assert "7, 8" in str(info.value)


def _karpathy(tmp_path: Path, with_cocoid: bool) -> Path:
    images = []
    for i, (name, split) in enumerate(
        [("COCO_val2014_000000000042.jpg", "test"), ("1000092795.jpg", "test"), ("x.jpg", "train")]
    ):
        image = {
            "filename": name,
            "split": split,
            "imgid": i,
            "sentences": [
                {"raw": f"Caption {i}.", "tokens": ["caption", str(i)]},
                {"tokens": ["only", "tokens"]},
            ],
        }
        if with_cocoid:
            image["cocoid"] = 100 + i
        images.append(image)
    return _write(tmp_path / "dataset.json", {"images": images, "dataset": "coco"})


def test_load_karpathy_references_keys(tmp_path):
    by_cocoid = load_karpathy_references(_karpathy(tmp_path, with_cocoid=True), "test")
    assert by_cocoid == {100: ["Caption 0.", "only tokens"], 101: ["Caption 1.", "only tokens"]}

    by_name = load_karpathy_references(_karpathy(tmp_path, with_cocoid=False), "test")
    assert set(by_name) == {"COCO_val2014_000000000042.jpg", "1000092795.jpg"}
    # Results may name Karpathy images by file name, stem, or the number in the stem.
    aligned = align_references({42: "a", "1000092795": "b"}, by_name)
    assert aligned == {42: ["Caption 0.", "only tokens"], "1000092795": ["Caption 1.", "only tokens"]}
    assert align_references({1000092795: "b"}, by_name) == {1000092795: ["Caption 1.", "only tokens"]}


def test_load_karpathy_references_unknown_split(tmp_path):
    with pytest.raises(UserError, match=r"no images in split 'val'; the file has splits \['test', 'train'\]"):
        load_karpathy_references(_karpathy(tmp_path, with_cocoid=True), "val")


# --- one spelling per image id (an image written as 270 and "0270" is one image) -------------------------


def test_an_image_id_spelled_two_ways_is_one_image(tmp_path):
    twice = [{"image_id": 270, "caption": "a"}, {"image_id": "0270", "caption": "b"}]
    res = _write(tmp_path / "res.json", twice)
    with pytest.raises(UserError, match=r"image_id 270 appears more than once \(as 270 and '0270'\)"):
        load_coco_results(res)
    ann = _write(
        tmp_path / "ann.json",
        {"annotations": [{"image_id": "270", "caption": "A dog."}, {"image_id": 270, "caption": "Dog."}]},
    )
    assert load_coco_references(ann) == {270: ["A dog.", "Dog."]}
    res = _write(tmp_path / "res.json", [{"image_id": "0270", "caption": "a dog"}])
    assert align_references(load_coco_results(res), load_coco_references(ann)) == {270: ["A dog.", "Dog."]}


def test_string_video_ids_stay_strings(tmp_path):
    res = _write(tmp_path / "res.json", [{"image_id": "video123", "caption": "a man cooks"}])
    ann = _write(
        tmp_path / "ann.json",
        {
            "annotations": [
                {"image_id": "video123", "caption": "A man is cooking."},
                {"image_id": "video7", "caption": "x"},
            ]
        },
    )
    results, references = load_coco_results(res), load_coco_references(ann)
    assert results == {"video123": "a man cooks"}
    assert align_references(results, references) == {"video123": ["A man is cooking."]}
