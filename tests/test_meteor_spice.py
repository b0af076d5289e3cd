"""METEOR and SPICE through the reference jars: pycocoevalcap's numbers, and clear messages without them."""

from __future__ import annotations

import json
import shutil
from importlib import util
from pathlib import Path

import pytest

from vision2seq.__main__ import main
from vision2seq.evaluation import meteor as meteor_module
from vision2seq.evaluation.caption_metrics import CaptionEvaluator, resolve_metrics, score_captions
from vision2seq.evaluation.coco_files import load_coco_references, load_coco_results
from vision2seq.evaluation.meteor import MetricUnavailableError, meteor_scorer
from vision2seq.evaluation.spice import spice_jar

COCO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco_caption_eval"
HAVE_JAVA = shutil.which("java") is not None
HAVE_PYCOCOEVALCAP = util.find_spec("pycocoevalcap") is not None
needs_meteor = pytest.mark.skipif(
    not (HAVE_JAVA and HAVE_PYCOCOEVALCAP), reason="METEOR needs Java and pycocoevalcap (the meteor extra)"
)


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_resolve_metrics_orders_and_validates():
    assert resolve_metrics("cider, METEOR,bleu_4,bleu") == ("bleu", "meteor", "cider")
    assert resolve_metrics(["rouge-l"]) == ("rouge_l",)
    with pytest.raises(ValueError, match="unknown caption metric 'bleurt'; choose from bleu, meteor"):
        resolve_metrics("bleu,bleurt")
    with pytest.raises(ValueError, match="no caption metric"):
        resolve_metrics([])


def test_only_the_chosen_metrics_are_computed():
    scores = score_captions({1: "a dog"}, {1: ["a dog runs"]}, per_image=True, metrics="rouge_l,bleu")
    assert list(scores) == ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "per_image"]
    assert list(scores["per_image"][1]) == ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l"]


def test_without_java_meteor_is_a_one_line_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(meteor_module, "_scorer", None)
    monkeypatch.setattr(meteor_module.shutil, "which", lambda _name: None)
    with pytest.raises(MetricUnavailableError, match=r"METEOR .* needs Java: install a Java runtime"):
        CaptionEvaluator(metrics="meteor")
    predictions = _write(tmp_path / "res.json", [{"image_id": 1, "caption": "a dog"}])
    references = _write(tmp_path / "ann.json", {"annotations": [{"image_id": 1, "caption": "a dog"}]})
    args = ["score-captions", "--predictions", str(predictions), "--references", str(references)]
    assert main([*args, "--metrics", "bleu,meteor"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "leave meteor out of --metrics" in err
    assert main(args) == 0  # the default metrics need no Java


def test_without_pycocoevalcap_meteor_names_the_extra(monkeypatch):
    monkeypatch.setattr(meteor_module, "_scorer", None)
    monkeypatch.setattr(meteor_module.util, "find_spec", lambda _name: None)
    with pytest.raises(MetricUnavailableError, match=r'pip install "vision2seq\[meteor\]"'):
        meteor_scorer()


def test_spice_without_corenlp_models_says_how_to_get_them(tmp_path, monkeypatch):
    (tmp_path / "meteor").mkdir()
    monkeypatch.setattr("vision2seq.evaluation.spice.pycocoevalcap_dir", lambda _metric: tmp_path)
    with pytest.raises(MetricUnavailableError, match=r"stanford-corenlp-3\.6\.0\.jar.*get_stanford_models"):
        spice_jar()
    with pytest.raises(MetricUnavailableError, match=r"SPICE needs the Stanford CoreNLP 3\.6\.0 models"):
        CaptionEvaluator(metrics="bleu,spice")


@needs_meteor
@pytest.mark.slow
@pytest.mark.skipif(not COCO.is_dir(), reason="../shared/data/coco_caption_eval not present")
def test_meteor_equals_pycocoevalcap_and_starts_once():
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    results = load_coco_results(COCO / "en_captions_val2014_fakecap_results.json")
    references = load_coco_references(COCO / "en_captions_val2014.json")
    predictions = {str(key): caption for key, caption in results.items()}
    raw_refs = {str(key): references[key] for key in results}
    # pycocoevalcap's input: its own PTB tokenization of the example, shipped with the data.
    gts = json.loads((COCO / "en_captions_val2014_references_after_tokenization.json").read_text())
    res = json.loads((COCO / "en_captions_val2014_results_after_tokenization.json").read_text())
    # Odd text too: symbols, Unicode, "|||" (METEOR's field separator), an empty caption.
    odd = {"odd1": ("A café ✓ in São Paulo!", ["a cafe in sao paulo", "Two dogs."])}
    odd |= {"odd2": ("a ||| b c", ["a ||| b", "x y"]), "odd3": ("", ["A cat :)"])}
    captions = {key: [{"caption": c} for c in (prediction, *refs)] for key, (prediction, refs) in odd.items()}
    # A last line, so that no caption is tokenized at the end of the file (see docs/metrics.md, What
    # deliberately differs).
    tokenized = PTBTokenizer().tokenize(captions | {"end": [{"caption": "end"}]})
    for key, (prediction, refs) in odd.items():
        predictions[key], raw_refs[key] = prediction, refs
        res[key], gts[key] = tokenized[key][:1], tokenized[key][1:]
    gts = {key: gts[key] for key in res}
    expected, expected_per_image = Meteor().compute_score(gts, res)

    evaluator = CaptionEvaluator(metrics="meteor")
    evaluator.update(predictions, raw_refs)
    scores = evaluator.compute(per_image=True)
    assert scores["meteor"] == pytest.approx(expected, abs=1e-9, rel=0)
    for key, value in zip(gts, expected_per_image, strict=True):
        assert scores["per_image"][key]["meteor"] == pytest.approx(value, abs=1e-9, rel=0), key
    # A second evaluator reuses the running jar instead of starting another.
    pid = meteor_scorer()._process.pid
    CaptionEvaluator(metrics=["bleu", "meteor"])
    assert meteor_scorer()._process.pid == pid
