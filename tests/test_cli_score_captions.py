"""`vision2seq score-captions` reproduces the reference COCO caption evaluation from the raw files."""

import json
from pathlib import Path

import pytest

from vision2seq.__main__ import main

COCO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco_caption_eval"
REFERENCE = {"bleu_1": 0.5794, "bleu_2": 0.4044, "bleu_3": 0.2785, "bleu_4": 0.1908, "cider": 0.5998}


@pytest.mark.skipif(not COCO.is_dir(), reason="../shared/data/coco_caption_eval not present")
def test_cli_reproduces_reference_scores(capsys):
    args = [
        "score-captions",
        "--predictions",
        str(COCO / "en_captions_val2014_fakecap_results.json"),
        "--references",
        str(COCO / "en_captions_val2014.json"),
        "--json",
    ]
    assert main(args) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider", "rouge_l"}
    for key, value in REFERENCE.items():
        assert scores[key] == pytest.approx(value, abs=0.002), key


def test_karpathy_references_and_per_image(tmp_path, capsys):
    karpathy = {
        "images": [
            {
                "filename": "a.jpg",
                "cocoid": 1,
                "split": "test",
                "sentences": [{"raw": "A dog runs on the grass."}],
            },
            {
                "filename": "b.jpg",
                "cocoid": 2,
                "split": "test",
                "sentences": [{"raw": "a cat sits on a mat"}],
            },
            {"filename": "c.jpg", "cocoid": 3, "split": "train", "sentences": [{"raw": "a bird"}]},
        ]
    }
    (tmp_path / "dataset.json").write_text(json.dumps(karpathy))
    (tmp_path / "results.json").write_text(
        json.dumps(
            [
                {"image_id": 1, "caption": "a dog runs on the grass"},
                {"image_id": 2, "caption": "a cat sits on a mat"},
            ]
        )
    )
    assert (
        main(
            [
                "score-captions",
                "--predictions",
                str(tmp_path / "results.json"),
                "--references",
                str(tmp_path / "dataset.json"),
                "--split",
                "test",
                "--json",
                "--per-image",
            ]
        )
        == 0
    )
    scores = json.loads(capsys.readouterr().out)
    assert scores["bleu_4"] == pytest.approx(1.0) and scores["rouge_l"] == pytest.approx(1.0)
    assert set(scores["per_image"]) == {"1", "2"}


def test_bad_files_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "results.json").write_text('[{"image_id": 1, "caption": ')
    (tmp_path / "refs.json").write_text(
        json.dumps({"annotations": [{"image_id": 5, "caption": "x"}], "images": [{"id": 5}]})
    )
    code = main(
        [
            "score-captions",
            "--predictions",
            str(tmp_path / "results.json"),
            "--references",
            str(tmp_path / "refs.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "results.json: malformed JSON" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "results.json").write_text(json.dumps([{"image_id": 7, "caption": "a dog"}]))
    assert (
        main(
            [
                "score-captions",
                "--predictions",
                str(tmp_path / "results.json"),
                "--references",
                str(tmp_path / "refs.json"),
            ]
        )
        == 1
    )
    assert "have no references" in capsys.readouterr().err


def _score(tmp_path, results, annotations, *extra) -> int:
    (tmp_path / "res.json").write_text(json.dumps(results))
    (tmp_path / "ann.json").write_text(json.dumps({"annotations": annotations}))
    args = ["score-captions", "--predictions", str(tmp_path / "res.json")]
    return main([*args, "--references", str(tmp_path / "ann.json"), "--json", *extra])


def test_metrics_option_chooses_what_is_computed(tmp_path, capsys):
    results = [{"image_id": 1, "caption": "a dog runs"}, {"image_id": 2, "caption": "a cat"}]
    annotations = [{"image_id": 1, "caption": "A dog runs."}, {"image_id": 2, "caption": "A cat sleeps."}]
    assert _score(tmp_path, results, annotations, "--metrics", "cider,rouge_l") == 0
    assert list(json.loads(capsys.readouterr().out)) == ["rouge_l", "cider"]
    assert _score(tmp_path, results, annotations, "--metrics", "bleu,nope") == 2  # a usage error
    err = capsys.readouterr().err
    assert "unknown caption metric 'nope'; choose from bleu, meteor, rouge_l, cider, spice" in err


def test_an_image_id_as_number_and_string_is_scored_once(tmp_path, capsys):
    annotations = [{"image_id": 270, "caption": "A dog runs."}, {"image_id": "270", "caption": "A dog."}]
    results = [{"image_id": "0270", "caption": "a dog runs"}]
    assert _score(tmp_path, results, annotations, "--per-image") == 0
    assert list(json.loads(capsys.readouterr().out)["per_image"]) == ["270"]
    results.append({"image_id": 270, "caption": "a dog"})
    assert _score(tmp_path, results, annotations) == 1
    err = capsys.readouterr().err
    assert "image_id '0270' appears more than once (as '0270' and 270)" in err and err.count("\n") == 1


def test_string_video_ids(tmp_path, capsys):
    annotations = [{"image_id": "video123", "caption": "A man is cooking."}]
    annotations.append({"image_id": "video9", "caption": "A dog runs."})
    results = [{"image_id": "video123", "caption": "a man is cooking"}]
    results.append({"image_id": "video9", "caption": "a cat"})
    assert _score(tmp_path, results, annotations, "--per-image") == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["per_image"]["video123"]["bleu_4"] == pytest.approx(1.0)
