"""Bad annotation files, split lists and configs, through the Python API (the parsers, ``load_config``,
``score_caption_files``) and the CLI (``train``, ``evaluate``, ``score-captions``): each is one line
naming the file and the problem, exit 1 for bad input and 2 for config errors, never a traceback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import tiny_models
from tiny_models import (
    MISSING_IMAGE,
    MISSING_VIDEO,
    TinyRun,
    assert_one_error,
    error_lines,
    run_cli,
    run_module,
)

from vision2seq.config import ConfigError, load_config
from vision2seq.data.captions import check_images_exist, load_caption_dataset, select_split
from vision2seq.data.video.loaders import load_video_list
from vision2seq.errors import UserError
from vision2seq.evaluation.coco_files import score_caption_files
from vision2seq.jsonfiles import MAX_JSON_BYTES, MAX_JSON_DEPTH, read_json

# --- captioning annotation files ------------------------------------------------------------------

# name -> (writer(folder, tiny dataset dict, split) -> annotations path, fragments of the message).
# ``split`` is where referenced-but-missing images go: "train" for `train`, "test" for `evaluate`.
CaptionCase = tuple[Callable[[Path, dict, str], Path], tuple[str, ...]]

# Shared fixtures (see tiny_models): the tiny checkpoints, and torch on one thread for these tests.
tiny_captioner = tiny_models.tiny_captioner
tiny_video = tiny_models.tiny_video
torch_one_thread = tiny_models.torch_one_thread


def _json(folder: Path, data: object, name: str = "dataset.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def _with_missing_images(folder: Path, dataset: dict, split: str) -> Path:
    images = [im for im in dataset["images"] if im["filename"] != MISSING_IMAGE]
    for i in range(5):
        images.append({"filename": f"gone_{i}.png", "split": split, "sentences": [{"raw": "a gone shape"}]})
    return _json(folder, {"images": images})


def _malformed(folder: Path, dataset: dict, split: str) -> Path:
    path = folder / "dataset.json"
    path.write_text('{"images": [{"filename": "shape_00000.png",\n "split": "train" "sentences": []}]}')
    return path


def _same_id(folder: Path, dataset: dict, split: str, value: object = None) -> Path:
    """The dataset with its second image given the first one's ``imgid`` (or ``value``)."""
    images = [dict(im) for im in dataset["images"]]
    images[1]["imgid"] = images[0]["imgid"] if value is None else value
    return _json(folder, {"images": images})


def _nested(folder: Path, dataset: dict, split: str, depth: int) -> Path:
    path = folder / "dataset.json"
    path.write_text('{"images": ' + "[" * depth + "]" * depth + "}")
    return path


CAPTION_CASES: dict[str, CaptionCase] = {
    "imgid_twice": (
        _same_id,
        ("images[1] has the same imgid '0' as images[0]; every image needs its own id",),
    ),
    "imgid_twice_as_int_and_string": (
        lambda d, ds, s: _same_id(d, ds, s, value="0"),
        ("images[1] has the same imgid '0' as images[0]",),
    ),
    "coco_id_twice": (
        lambda d, ds, s: _json(
            d,
            {
                "images": [{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}],
                "annotations": [{"image_id": 1, "caption": "x"}],
            },
        ),
        ("images[1] has the same id '1' as images[0]",),
    ),
    "json_nested_past_the_recursion_limit": (
        lambda d, ds, s: _nested(d, ds, s, 100_000),
        ("dataset.json: nested more than 64 levels deep",),
    ),
    "json_nested_too_deeply": (
        lambda d, ds, s: _nested(d, ds, s, 100),
        ("dataset.json: nested more than 64 levels deep",),
    ),
    "malformed_json": (_malformed, ("dataset.json: malformed JSON at line 2 column 19",)),
    "not_a_dataset": (lambda d, ds, s: _json(d, [1, 2, 3]), ("neither a Karpathy split file",)),
    "missing_sentences": (
        lambda d, ds, s: _json(d, {"images": [{"filename": "shape_00000.png", "split": s}]}),
        ("images[0] needs a non-empty 'sentences' list",),
    ),
    "missing_filename": (
        lambda d, ds, s: _json(d, {"images": [*ds["images"][:2], {"split": s, "sentences": [{"raw": "x"}]}]}),
        ("images[2] needs 'filename'", "missing"),
    ),
    "filename_not_a_string": (
        lambda d, ds, s: _json(d, {"images": [{"filename": 7, "split": s, "sentences": [{"raw": "x"}]}]}),
        ("images[0] needs 'filename' as a non-empty string (int 7)",),
    ),
    "sentence_without_text": (
        lambda d, ds, s: _json(d, {"images": [{"filename": "a.png", "split": s, "sentences": [{"id": 1}]}]}),
        ("images[0].sentences[0] needs a 'raw' string or a 'tokens' list",),
    ),
    "coco_annotation_without_caption": (
        lambda d, ds, s: _json(
            d, {"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1}]}
        ),
        ("annotations[0] needs a 'caption' string",),
    ),
    "coco_unknown_image_id": (
        lambda d, ds, s: _json(
            d, {"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 2, "caption": "x"}]}
        ),
        ("1 annotations refer to unknown image ids, e.g. 2",),
    ),
    "path_escaping_the_root": (
        lambda d, ds, s: _json(
            d, {"images": [{"filename": "../../etc/passwd", "split": s, "sentences": [{"raw": "x"}]}]}
        ),
        ("path '../../etc/passwd' leaves the dataset root",),
    ),
    "absolute_path": (
        lambda d, ds, s: _json(
            d,
            {"images": [{"filepath": "/etc", "filename": "passwd", "split": s, "sentences": [{"raw": "x"}]}]},
        ),
        ("path '/etc/passwd' leaves the dataset root",),
    ),
    # The API says "file not found", the CLI "data.annotations: ... does not exist" before any work.
    "annotations_not_found": (lambda d, ds, s: d / "nope.json", ("nope.json",)),
    "missing_images": (
        _with_missing_images,
        ("5 of", "referenced images are missing (e.g. ", "gone_0.png, ", "gone_2.png)", "skip_missing=true"),
    ),
}


def _caption_case(case: str, tiny: TinyRun, folder: Path, split: str) -> tuple[Path, tuple[str, ...]]:
    make, fragments = CAPTION_CASES[case]
    return make(folder, json.loads(tiny.annotations.read_text()), split), fragments


@pytest.mark.parametrize("case", sorted(CAPTION_CASES))
def test_caption_annotations_api(case: str, tiny_captioner: TinyRun, tmp_path: Path) -> None:
    annotations, fragments = _caption_case(case, tiny_captioner, tmp_path, "train")
    with pytest.raises(UserError) as caught:
        records = load_caption_dataset(annotations, tiny_captioner.data)
        check_images_exist(select_split(records, "train"), annotations)
    message = str(caught.value)
    assert message.startswith(str(annotations)) and "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("case", sorted(CAPTION_CASES))
def test_caption_annotations_cli_train(case: str, tiny_captioner, tmp_path, capsys) -> None:
    annotations, fragments = _caption_case(case, tiny_captioner, tmp_path, "train")
    code, _, err = run_cli(
        capsys,
        "train",
        tiny_captioner.config,
        f"data.annotations={annotations}",
        f"output_dir={tmp_path / 'run'}",
        "data.skip_missing=false",
        "--quiet",
    )
    assert code == 1
    assert_one_error(err, "train", str(annotations), *fragments)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", sorted(CAPTION_CASES))
def test_caption_annotations_cli_evaluate(case: str, tiny_captioner, tmp_path, capsys) -> None:
    annotations, fragments = _caption_case(case, tiny_captioner, tmp_path, "test")
    code, out, err = run_cli(
        capsys,
        "evaluate",
        "--checkpoint",
        tiny_captioner.checkpoint,
        "--quiet",
        f"data.annotations={annotations}",
        "data.skip_missing=false",
    )
    assert code == 1 and out == ""
    assert_one_error(err, "evaluate", str(annotations), *fragments)


def test_missing_images_are_skipped_when_the_config_says_so(tiny_captioner, tmp_path, capsys) -> None:
    # Training: the tiny captioner's train split lists an image that does not exist.
    listed = {im["filename"] for im in json.loads(tiny_captioner.annotations.read_text())["images"]}
    assert MISSING_IMAGE in listed and not (tiny_captioner.data / MISSING_IMAGE).exists()
    assert "skip_missing: true" in tiny_captioner.config.read_text() and tiny_captioner.checkpoint.is_file()
    # Evaluation: five missing test images are skipped, the others scored.
    annotations = _with_missing_images(tmp_path, json.loads(tiny_captioner.annotations.read_text()), "test")
    code, out, err = run_cli(
        capsys,
        "evaluate",
        "--checkpoint",
        tiny_captioner.checkpoint,
        "--json",
        "--quiet",
        f"data.annotations={annotations}",
        "data.skip_missing=true",
    )
    assert code == 0 and error_lines(err) == []
    assert {"bleu_1", "bleu_4"} <= set(json.loads(out))
    records = load_caption_dataset(annotations, tiny_captioner.data)
    test = select_split(records, "test")
    assert len(check_images_exist(test, annotations, skip_missing=True)) == len(test) - 5


# --- video split lists -------------------------------------------------------------------------

# name -> (edit(annotations folder), fragments of the message, whether the test list is broken too
# (then `evaluate`, which reads only the test list, reports it as well)).
VideoCase = tuple[Callable[[Path], Path], tuple[str, ...], bool]


def _append(path: Path, *lines: str) -> None:
    with path.open("ab") as f:
        f.write("".join(f"{line}\r\n" for line in lines).encode())


def _replace(path: Path, old: str, new: str) -> None:
    path.write_bytes(path.read_bytes().replace(old.encode(), new.encode()))


def _both_lists(ann: Path, train_line: str, test_line: str) -> Path:
    _append(ann / "trainlist01.txt", train_line)
    _append(ann / "testlist01.txt", test_line)
    return ann


def _missing_videos(ann: Path) -> Path:
    train = [f"MoveRight/v_MoveRight_g3{i}_c01.avi 2" for i in range(4)]
    test = [f"MoveRight/v_MoveRight_g3{i}_c01.avi" for i in range(4)]
    _append(ann / "trainlist01.txt", *train)
    _append(ann / "testlist01.txt", *test)
    return ann


def _csv(ann: Path, text: str | bytes) -> Path:
    path = ann / "clips.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _hmdb(ann: Path, line: str) -> Path:
    folder = ann.parent / "hmdb_splits"
    folder.mkdir()
    (folder / "wave_test_split1.txt").write_text(f"{line}\n")
    return folder


VIDEO_CASES: dict[str, VideoCase] = {
    "classind_malformed": (
        lambda ann: (_replace(ann / "classInd.txt", "2 MoveRight", "MoveRight"), ann)[1],
        ("classInd.txt:2: expected '2 ClassName', got 'MoveRight'",),
        True,
    ),
    "label_out_of_range": (
        lambda ann: (_append(ann / "trainlist01.txt", "MoveLeft/v_MoveLeft_g05_c01.avi 7"), ann)[1],
        ("trainlist01.txt:5: label '7' is not in 1..2",),
        False,
    ),
    "label_not_a_number": (
        lambda ann: (_append(ann / "trainlist01.txt", "MoveLeft/v_MoveLeft_g05_c01.avi \u00b2"), ann)[1],
        ("trainlist01.txt:5: label '\u00b2' is not in 1..2",),
        False,
    ),
    "unknown_class_folder": (
        lambda ann: (_append(ann / "testlist01.txt", "Dance/v_Dance_g05_c01.avi"), ann)[1],
        ("class folder 'Dance' is not in classInd.txt",),
        True,
    ),
    "path_escaping_the_root": (
        lambda ann: _both_lists(ann, "../../../etc/passwd 1", "MoveLeft/../../../etc/passwd"),
        ("leaves the dataset root",),
        True,
    ),
    "missing_videos": (
        _missing_videos,
        (
            "4 of ",
            "listed videos are missing under ",
            "(first: MoveRight/v_MoveRight_g30_c01.avi, MoveRight/v_MoveRight_g31_c01.avi, "
            "MoveRight/v_MoveRight_g32_c01.avi)",
            "data.skip_missing=true",
        ),
        True,
    ),
    "list_file_missing": (
        lambda ann: ((ann / "trainlist01.txt").unlink(), (ann / "testlist01.txt").unlink(), ann)[2],
        ("list01.txt: missing UCF101 t",),
        True,
    ),
    "csv_without_label_column": (
        lambda ann: _csv(ann, "path,kind\nMoveLeft/a.avi,x\n"),
        ("clips.csv: header ['path', 'kind'] needs a 'path' and a 'label' column",),
        True,
    ),
    "csv_too_few_columns": (
        lambda ann: _csv(ann, "MoveLeft/a.avi,MoveLeft\nMoveLeft/b.avi\n"),
        ("clips.csv:2: expected at least 2 columns",),
        True,
    ),
    "csv_not_utf8": (
        lambda ann: _csv(ann, b"path,label\n\xff\xfe\x00bad,1\n"),
        ("clips.csv: not UTF-8",),
        True,
    ),
    "csv_path_escaping_the_root": (
        lambda ann: _csv(ann, "path,label\n/etc/passwd,a\n"),
        ("clips.csv:2: path '/etc/passwd' leaves the dataset root",),
        True,
    ),
    "hmdb_malformed_line": (
        lambda ann: _hmdb(ann, "clip.avi 5"),
        ("wave_test_split1.txt:1: expected 'name.avi 0|1|2', got 'clip.avi 5'",),
        True,
    ),
    "annotations_not_found": (
        lambda ann: ann.parent / "nowhere",
        ("nowhere", "does not exist"),
        True,
    ),
}


def _video_case(case: str, tiny: TinyRun, folder: Path) -> tuple[Path, tuple[str, ...], bool]:
    annotations = folder / "ucfTrainTestlist"
    shutil.copytree(tiny.annotations, annotations)
    (annotations / "trainlist01.txt").write_bytes(
        (annotations / "trainlist01.txt").read_bytes().replace(f"{MISSING_VIDEO} 1\r\n".encode(), b"")
    )
    edit, fragments, in_test_list = VIDEO_CASES[case]
    return edit(annotations), fragments, in_test_list


@pytest.mark.parametrize("case", sorted(VIDEO_CASES))
def test_video_lists_api(case: str, tiny_video: TinyRun, tmp_path: Path) -> None:
    annotations, fragments, _ = _video_case(case, tiny_video, tmp_path)
    config = load_config(tiny_video.config, [f"data.annotations={annotations}", "data.skip_missing=false"])
    with pytest.raises(UserError) as caught:
        load_video_list(config, "train")
        load_video_list(config, "test")
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


# Training never reads the test list (validation is carved out of the training list), so a problem
# only in the test list does not stop it.
@pytest.mark.parametrize("case", sorted(set(VIDEO_CASES) - {"unknown_class_folder"}))
def test_video_lists_cli_train(case: str, tiny_video, tmp_path, capsys) -> None:
    annotations, fragments, _ = _video_case(case, tiny_video, tmp_path)
    code, _, err = run_cli(
        capsys,
        "train",
        tiny_video.config,
        f"data.annotations={annotations}",
        f"output_dir={tmp_path / 'run'}",
        "data.skip_missing=false",
        "--quiet",
    )
    assert code == 1
    assert_one_error(err, "train", *fragments)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", sorted(name for name, (_, _, in_test) in VIDEO_CASES.items() if in_test))
def test_video_lists_cli_evaluate(case: str, tiny_video, tmp_path, capsys) -> None:
    annotations, fragments, _ = _video_case(case, tiny_video, tmp_path)
    code, out, err = run_cli(
        capsys,
        "evaluate",
        "--checkpoint",
        tiny_video.checkpoint,
        "--quiet",
        f"data.annotations={annotations}",
        "data.skip_missing=false",
    )
    assert code == 1 and out == ""
    assert_one_error(err, "evaluate", *fragments)


def test_missing_videos_are_skipped_when_the_config_says_so(tiny_video, tmp_path, capsys, caplog) -> None:
    # Training: the tiny classifier's train list names a video that does not exist.
    train_list = (tiny_video.annotations / "trainlist01.txt").read_text()
    assert MISSING_VIDEO in train_list and not (tiny_video.data / MISSING_VIDEO).exists()
    assert "skip_missing: true" in tiny_video.config.read_text() and tiny_video.checkpoint.is_file()
    # Evaluation: four missing test videos are skipped (with a warning), the others scored.
    annotations, _, _ = _video_case("missing_videos", tiny_video, tmp_path)
    code, out, err = run_cli(
        capsys,
        "evaluate",
        "--checkpoint",
        tiny_video.checkpoint,
        "--json",
        "--quiet",
        f"data.annotations={annotations}",
        "data.skip_missing=true",
    )
    assert code == 0
    assert sum(row["support"] for row in json.loads(out)["per_class"]) == 2
    assert [line for line in error_lines(err) if not line.startswith("wrote ")] == []
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "skipping 4 of 6 listed videos missing" in warnings[0]


# --- configs ------------------------------------------------------------------------------------

# name -> (config file text or None for the tiny config, overrides, fragments of the message)
CONFIG_CASES: dict[str, tuple[str | None, tuple[str, ...], tuple[str, ...]]] = {
    "unknown_key_override": (None, ("train.epochz=1",), ("unknown key 'train.epochz'", "valid keys here:")),
    "unknown_key_in_file": ("task: captioning\ndata:\n  imagez: /x\n", (), ("unknown key 'data.imagez'",)),
    "unknown_section": (None, ("optimizer.lr=0.1",), ("unknown key 'optimizer'",)),
    "wrong_type_override": (None, ("train.epochs=three",), ("key 'train.epochs' must be int, got 'three'",)),
    "wrong_type_in_file": (
        "task: captioning\ndata:\n  skip_missing: maybe\n",
        (),
        ("key 'data.skip_missing' must be bool, got 'maybe'",),
    ),
    "float_for_int": (None, ("train.batch_size=2.5",), ("key 'train.batch_size' must be int, got 2.5",)),
    "scalar_for_section": (None, ("model=resnet18",), ("key 'model' must be a section",)),
    "list_expected": (None, ("data.train_splits=train",), ("key 'data.train_splits' must be a list",)),
    "value_not_allowed": (
        None,
        ("model.decoder.kind=transformer",),
        ("key 'model.decoder.kind' must be one of 'show_tell', 'attention', got 'transformer'",),
    ),
    "unknown_task": (None, ("task=detection",), ("key 'task' must be one of",)),
    "override_without_value": (None, ("train.epochs",), ("override 'train.epochs': expected key=value",)),
    "malformed_yaml": ("task: captioning\ntrain: [1, 2\n", (), ("invalid YAML",)),
    "not_a_mapping": ("- task\n- captioning\n", (), ("a config must be a mapping of keys, got list",)),
    "video_value_not_allowed": (
        "task: video_classification\n",
        ("data.sampling=random",),
        ("key 'data.sampling' must be one of 'segment', 'dense', got 'random'",),
    ),
}


def _config_file(case: str, tiny: TinyRun, folder: Path) -> Path:
    text = CONFIG_CASES[case][0]
    if text is None:
        return tiny.config
    path = folder / "experiment.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_errors_api(case: str, tiny_captioner, tmp_path: Path) -> None:
    _, overrides, fragments = CONFIG_CASES[case]
    with pytest.raises(ConfigError) as caught:
        load_config(_config_file(case, tiny_captioner, tmp_path), list(overrides))
    assert "\n" not in str(caught.value)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_errors_cli_train(case: str, tiny_captioner, tmp_path, capsys) -> None:
    _, overrides, fragments = CONFIG_CASES[case]
    config = _config_file(case, tiny_captioner, tmp_path)
    code, out, err = run_cli(capsys, "train", config, f"output_dir={tmp_path / 'run'}", *overrides, "--quiet")
    assert code == 2 and out == ""
    assert_one_error(err, "train", *fragments)


@pytest.mark.parametrize(
    "case", sorted(name for name, (text, overrides, _) in CONFIG_CASES.items() if text is None and overrides)
)
def test_config_errors_cli_evaluate_overrides(case: str, tiny_captioner, capsys) -> None:
    _, overrides, fragments = CONFIG_CASES[case]
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", tiny_captioner.checkpoint, *overrides)
    assert code == 2 and out == ""
    assert_one_error(err, "evaluate", *fragments)


def test_config_file_not_found(tmp_path, capsys) -> None:
    code, _, err = run_cli(capsys, "train", tmp_path / "nope.yaml")
    assert code == 2
    assert_one_error(err, "train", "nope.yaml: config file not found")


def test_python_dash_m_train_config_error_exit_status(tiny_captioner) -> None:
    proc = run_module("train", tiny_captioner.config, "train.epochs=three")
    assert proc.returncode == 2 and proc.stdout == ""
    assert_one_error(proc.stderr, "train", "key 'train.epochs' must be int, got 'three'")


# --- score-captions -----------------------------------------------------------------------------

GOOD_RESULTS = [{"image_id": 1, "caption": "a dog"}, {"image_id": 2, "caption": "a cat"}]
GOOD_REFERENCES = {
    "images": [{"id": 1, "file_name": "1.jpg"}, {"id": 2, "file_name": "2.jpg"}],
    "annotations": [{"image_id": 1, "caption": "a dog runs"}, {"image_id": 2, "caption": "a cat sits"}],
}

# name -> (results, references (a JSON value, or bytes written as is), which file the message names,
# fragments)
SCORE_CASES: dict[str, tuple[object, object, str, tuple[str, ...]]] = {
    "results_malformed_json": (b'[{"image_id": 1,', GOOD_REFERENCES, "results", ("malformed JSON at line",)),
    "results_not_a_list": ({"image_id": 1}, GOOD_REFERENCES, "results", ("expected a list of",)),
    "results_entry_without_caption": ([{"image_id": 1}], GOOD_REFERENCES, "results", ('no "caption"',)),
    "results_caption_not_text": (
        [{"image_id": 1, "caption": 5}],
        GOOD_REFERENCES,
        "results",
        ("entry 0 has caption 5; expected a string",),
    ),
    "results_repeat_an_image": (GOOD_RESULTS * 2, GOOD_REFERENCES, "results", ("1 appears more than once",)),
    "results_unknown_images": (
        [*GOOD_RESULTS, {"image_id": 9, "caption": "x"}],
        GOOD_REFERENCES,
        "results",
        ("1 of 3 predicted images have no references", "image_id 9"),
    ),
    "results_id_of_superscript_digits": (
        [{"image_id": "\u00b2", "caption": "x"}],
        GOOD_REFERENCES,
        "results",
        ("1 of 1 predicted images have no references", "image_id '\u00b2'"),
    ),
    "results_nested_too_deeply": (
        b"[" * 100_000 + b"]" * 100_000,
        GOOD_REFERENCES,
        "results",
        ("nested more than 64 levels deep",),
    ),
    "references_nested_too_deeply": (
        GOOD_RESULTS,
        {"annotations": json.loads("[" * 70 + "]" * 70)},
        "references",
        ("nested more than 64 levels deep",),
    ),
    "references_not_utf8": (GOOD_RESULTS, b"\xff\xfe\x00{", "references", ("not UTF-8 text",)),
    "references_without_captions": (
        GOOD_RESULTS,
        {"annotations": [{"image_id": 1}]},
        "references",
        ('annotation 0 has no "caption" key',),
    ),
    "references_without_split": (
        GOOD_RESULTS,
        {"images": [{"filename": "1.jpg", "split": "train", "sentences": [{"raw": "x"}]}]},
        "references",
        ("no images in split 'test'; the file has splits ['train']",),
    ),
}


def _score_files(case: str, folder: Path) -> tuple[Path, Path, Path]:
    results, references, named, _ = SCORE_CASES[case]
    paths = {"results": folder / "results.json", "references": folder / "references.json"}
    for key, value in (("results", results), ("references", references)):
        data = value if isinstance(value, bytes) else json.dumps(value).encode()
        paths[key].write_bytes(data)
    return paths["results"], paths["references"], paths[named]


@pytest.mark.parametrize("case", sorted(SCORE_CASES))
def test_score_caption_files_api(case: str, tmp_path: Path) -> None:
    results, references, named = _score_files(case, tmp_path)
    with pytest.raises(UserError) as caught:
        score_caption_files(results, references)
    assert str(caught.value).startswith(str(named)) and "\n" not in str(caught.value)
    for fragment in SCORE_CASES[case][3]:
        assert fragment in str(caught.value)


@pytest.mark.parametrize("case", sorted(SCORE_CASES))
def test_score_captions_cli(case: str, tmp_path: Path, capsys) -> None:
    results, references, named = _score_files(case, tmp_path)
    code, out, err = run_cli(capsys, "score-captions", "--predictions", results, "--references", references)
    assert code == 1 and out == ""
    assert_one_error(err, "score-captions", str(named), *SCORE_CASES[case][3])


# --- empty captions, bounded JSON ---------------------------------------------------------------


def _with_empty_captions(tiny: TinyRun, folder: Path) -> Path:
    """The tiny dataset with an empty second caption on every image and one image of empty captions."""
    dataset = json.loads(tiny.annotations.read_text())
    for image in dataset["images"]:
        image["sentences"].insert(1, {"raw": " ", "tokens": []})
    dataset["images"][0]["sentences"] = [{"raw": ""}, {"tokens": [], "raw": "\t"}]
    return _json(folder, dataset)


def test_empty_captions_are_skipped_and_reported(tiny_captioner, tmp_path, capsys) -> None:
    annotations = _with_empty_captions(tiny_captioner, tmp_path)
    records = load_caption_dataset(annotations, tiny_captioner.data)
    assert all(record.tokens and all(record.tokens) for record in records)
    n_images = len(json.loads(annotations.read_text())["images"])
    assert len(records) == n_images - 1
    expected = (
        f"{annotations}: skipped {n_images + 1} empty captions (e.g. images[0].sentences[0]); "
        "1 images had no other caption and are skipped"
    )
    assert error_lines(capsys.readouterr().err) == [expected]
    # The CLI trains on the rest, names the file in one line, and exits 1 (inputs were skipped).
    (tmp_path / "cli").mkdir()
    annotations = _with_empty_captions(tiny_captioner, tmp_path / "cli")  # reported once per file
    expected = expected.replace(str(tmp_path), str(tmp_path / "cli"))
    out = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        "train",
        tiny_captioner.config,
        f"data.annotations={annotations}",
        f"output_dir={out}",
        "--quiet",
    )
    assert code == 1 and (out / "best.pt").is_file()
    assert error_lines(err).count(expected) == 1
    (tmp_path / "eval").mkdir()
    annotations = _with_empty_captions(tiny_captioner, tmp_path / "eval")
    expected = expected.replace(str(tmp_path / "cli"), str(tmp_path / "eval"))
    code, _, err = run_cli(
        capsys, "evaluate", "--checkpoint", out / "best.pt", "--quiet", f"data.annotations={annotations}"
    )
    assert code == 1 and error_lines(err).count(expected) == 1


def test_json_files_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"images": ["x" * 100]}))
    with pytest.raises(UserError, match=r"big\.json: larger than 64 bytes, the limit for JSON files$"):
        read_json(path, max_bytes=64)
    assert read_json(path, max_bytes=1000) == {"images": ["x" * 100]}
    assert MAX_JSON_BYTES == 1 << 30 and MAX_JSON_DEPTH == 64  # as docs/reliability.md, Limits, says
    nested = tmp_path / "nested.json"
    nested.write_text("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert read_json(nested) is not None  # the limit itself is fine
