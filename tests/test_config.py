import dataclasses
import re
import typing
from pathlib import Path

import pytest
from tiny_models import assert_one_error, run_cli

from vision2seq.config import (
    SCHEMAS,
    CaptioningConfig,
    ClipFramesConfig,
    ConfigError,
    VideoConfig,
    check_consistency,
    config_from_dict,
    config_to_dict,
    load_config,
)
from vision2seq.config_loading import Range, bare
from vision2seq.data.vocab import SPECIALS, Vocabulary
from vision2seq.tasks.captioning import build_model
from vision2seq.yamlfiles import MAX_YAML_BYTES

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    config = load_config(path)
    assert config.output_dir
    assert config.model.encoder.name


def test_required_keys_exist_and_overrides_apply():
    config = load_config(
        CONFIGS / "flickr8k_resnet50.yaml",
        ["train.epochs=3", "output_dir=runs/a", "train.lr=1e-3", "model.encoder.weights=null"],
    )
    assert isinstance(config, CaptioningConfig)
    assert config.train.epochs == 3 and config.output_dir == "runs/a"
    assert config.train.lr == pytest.approx(1e-3)  # YAML 1.1 reads 1e-3 as a string; we accept it
    assert config.model.encoder.weights is None
    assert config.data.annotations and config.data.images and config.train.batch_size


@pytest.mark.parametrize(
    ("overrides", "conditioning"),
    [
        ([], "init"),  # ImageNet weights, frozen
        (["model.encoder.weights=null"], "merge"),  # trained from random init (trainable_from: auto)
        (["model.encoder.weights=null", "model.encoder.trainable_from=null"], "init"),
        (["model.encoder.weights=null", "train.objective=scst"], "merge"),  # as the run it starts from
        (["model.decoder.conditioning=par"], "par"),
    ],
)
def test_auto_conditioning_follows_whether_the_encoder_trains(overrides, conditioning):
    """``auto`` is resolved when the config is read, so the checkpoint stores what was built, and an SCST
    run (which freezes the encoder) builds the decoder of the cross-entropy run it continues."""
    config = load_config(CONFIGS / "flickr8k_resnet50.yaml", overrides)
    assert config.model.decoder.conditioning == conditioning
    model = build_model(config, Vocabulary([*SPECIALS, "a"]), load_weights=False)
    assert model.decoder.conditioning == conditioning


def test_unknown_key_names_the_key(tmp_path):
    cfg = tmp_path / "x.yaml"
    cfg.write_text("task: captioning\ntrain:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train\.epochz'"):
        load_config(cfg)
    with pytest.raises(ConfigError, match=r"unknown key 'model\.encoder\.nme'"):
        load_config(None, ["model.encoder.nme=resnet18"])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.epochs=three", "train.epochs"),
        ("train.batch_size=2.5", "train.batch_size"),
        ("train.resume=maybe", "train.resume"),
        ("model.encoder.output=flat", "model.encoder.output"),
        ("data.train_splits=train", "data.train_splits"),
        ("train=3", "train"),
    ],
)
def test_wrong_type_names_the_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(None, [override])


def test_task_selects_schema_and_bad_yaml_is_reported(tmp_path):
    assert isinstance(load_config(None, ["task=video_classification", "data.num_frames=4"]), VideoConfig)
    with pytest.raises(ConfigError, match="must be one of"):
        load_config(None, ["task=detection"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["train.epochs"])


# --- duplicate keys, bounded YAML -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "task: captioning\ntrain:\n  epochs: 3\nmodel: {}\ntrain:\n  lr: 0.1\n",
            "key 'train' is written twice (lines 2 and 5)",
        ),
        (
            "train:\n  epochs: 3\n  batch_size: 4\n  epochs: 5\n",
            "key 'epochs' is written twice (lines 2 and 4)",
        ),
        ("train: {epochs: 3, epochs: 4}\n", "key 'epochs' is written twice (line 1)"),
    ],
    ids=["section", "key", "flow"],
)
def test_a_key_written_twice_is_an_error(text, message, tmp_path, capsys):
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {message}; keep one")):
        load_config(path)
    code, _, err = run_cli(capsys, "train", path)
    assert code == 2
    assert_one_error(err, "train", str(path), message)


def test_merge_keys_may_still_be_overridden(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("train: &t {epochs: 2, lr: 0.1}\ngeneration: {beam_size: 2}\n")
    assert load_config(path).train.epochs == 2
    path.write_text("task: captioning\ntrain:\n  <<: {epochs: 2, lr: 0.1}\n  epochs: 3\n")
    config = load_config(path)
    assert (config.train.epochs, config.train.lr) == (3, 0.1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x" * (MAX_YAML_BYTES + 1), f"larger than {MAX_YAML_BYTES:,} bytes, not a config file"),
        ("train: " + "[" * 5_000 + "]" * 5_000, "nested too deeply for a config"),
        ("train: &a [*a]\n", "an alias refers to a value that contains it"),
    ],
    ids=["too_large", "too_deep", "recursive_alias"],
)
def test_yaml_bounds(text, message, tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {message}")):
        load_config(path)


def test_config_path_that_is_a_folder(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path}: is a folder, expected a YAML config file")):
        load_config(tmp_path)


# --- numeric ranges and contradictions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=-1", "key 'train.epochs' must be >= 1, got -1"),
        ("train.epochs=0", "key 'train.epochs' must be >= 1, got 0"),
        ("train.batch_size=0", "key 'train.batch_size' must be >= 1, got 0"),
        ("train.lr=nan", "key 'train.lr' must be a finite number, got 'nan'"),
        ("train.lr=.inf", "key 'train.lr' must be a finite number, got inf"),
        ("train.lr=1e999", "key 'train.lr' must be a finite number, got '1e999'"),
        ("train.lr=0", "key 'train.lr' must be > 0, got 0.0"),
        ("train.grad_clip=-1", "key 'train.grad_clip' must be >= 0 (0 or null disables clipping), got -1.0"),
        ("train.num_workers=-1", "key 'train.num_workers' must be >= 0, got -1"),
        ("model.decoder.dropout=1", "key 'model.decoder.dropout' must be in [0, 1), got 1.0"),
        ("generation.beam_size=0", "key 'generation.beam_size' must be in [1, 100], got 0"),
        (
            "generation.max_len=1000000000",
            "key 'generation.max_len' must be in [1, 1000] (words), got 1000000000",
        ),
        ("model.encoder.image_size=100000", "key 'model.encoder.image_size' must be in [16, 4096]"),
        ("generation.temperature=0", "key 'generation.temperature' must be > 0, got 0.0"),
        ("seed=-1", "key 'seed' must be in [0, 4294967295], got -1"),
        ("train.epochs=[1, 2, 3, 4, 5, 6, 7]", "key 'train.epochs' must be int, got [1, 2, 3, 4, ...]"),
    ],
)
def test_out_of_range_values_name_the_key_and_the_range(override, message, capsys):
    # A value from the command line is blamed on the override that set it, not on the config file.
    with pytest.raises(ConfigError, match=re.escape(f"override {override!r}: {message}")):
        load_config(None, [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.num_frames=0", "key 'data.num_frames' must be >= 1, got 0"),
        ("data.val_fraction=1", "key 'data.val_fraction' must be in (0, 1), got 1.0"),
        ("data.split=4", "key 'data.split' must be in [1, 3], got 4"),
        ("model.temporal.dropout=-0.1", "key 'model.temporal.dropout' must be in [0, 1), got -0.1"),
    ],
)
def test_out_of_range_video_values(override, message):
    with pytest.raises(ConfigError, match=re.escape(f"override {override!r}: {message}")):
        load_config(None, ["task=video_classification", override])


def _numeric_fields(cls: type, prefix: str = ""):
    """(dotted key, schema class, field name, annotation, number type, is a list) of every int/float
    field under ``cls``."""
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        tp = bare(hints[f.name])
        if dataclasses.is_dataclass(tp):
            yield from _numeric_fields(tp, f"{prefix}{f.name}.")
            continue
        is_list = typing.get_origin(tp) is list
        annotation = typing.get_args(tp)[0] if is_list else hints[f.name]
        if bare(annotation) in (int, float):
            yield prefix + f.name, cls, f.name, annotation, bare(annotation), is_list


@pytest.mark.parametrize("task", sorted(SCHEMAS))
def test_every_numeric_key_has_a_range_that_is_enforced(task):
    for key, cls, name, annotation, tp, is_list in _numeric_fields(SCHEMAS[task]):
        bounds = Range.of(annotation)
        assert bounds is not None, f"{key} has no range (an Annotated Field(ge=...) alias) in its annotation"
        step = 1 if tp is int else 0.5
        outside = [] if bounds.low is None else [bounds.low if bounds.low_open else bounds.low - step]
        outside += [] if bounds.high is None else [bounds.high if bounds.high_open else bounds.high + step]
        for value in outside:  # a list key checks each of its values
            given = f"[{tp(value)}]" if is_list else f"{tp(value)}"
            with pytest.raises(ConfigError, match=re.escape(f"key '{key}' must be {bounds.describe()}")):
                load_config(None, [f"task={task}", f"{key}={given}"])
        default = getattr(cls(), name)  # the defaults lie inside their ranges
        default = f"[{','.join(map(str, default))}]" if is_list else default
        load_config(None, [f"task={task}", f"{key}={'null' if default is None else default}"])


def test_attention_decoder_needs_a_grid(capsys, tmp_path):
    fix = "set model.encoder.output=grid, or model.decoder.kind=show_tell"
    with pytest.raises(ConfigError, match=re.escape(fix)):
        load_config(None, ["model.decoder.kind=attention", "model.encoder.output=pooled"])
    config = load_config(None, ["model.decoder.kind=attention", "model.encoder.output=grid"])
    assert config.model.decoder.kind == "attention"
    code, _, err = run_cli(capsys, "train", CONFIGS / "coco_attention.yaml", "model.encoder.output=pooled")
    assert code == 2
    assert_one_error(err, "train", "model.decoder.kind 'attention' needs model.encoder.output 'grid'", fix)


def test_resume_and_overwrite_contradict():
    with pytest.raises(ConfigError, match=r"train\.resume and train\.overwrite contradict"):
        load_config(None, ["train.resume=true", "train.overwrite=true"])


def test_out_of_range_value_on_the_command_line_is_exit_2(capsys):
    code, out, err = run_cli(capsys, "train", CONFIGS / "demo.yaml", "train.epochs=-1")
    assert code == 2 and out == ""
    assert_one_error(err, "train", "key 'train.epochs' must be >= 1, got -1")


def test_scst_settings_that_cannot_work_are_refused():
    with pytest.raises(ConfigError, match=r"needs train\.scst_samples >= 2 \(got 1\)"):
        load_config(None, ["train.objective=scst", "train.scst_baseline=mean", "train.scst_samples=1"])
    with pytest.raises(ConfigError, match=r"video classification trains with train\.objective=xent"):
        load_config(None, ["task=video_classification", "train.objective=scst"])
    config = load_config(None, ["train.objective=scst", "train.scst_baseline=mean", "train.scst_samples=2"])
    assert (config.train.objective, config.train.scst_samples) == ("scst", 2)


def test_an_error_in_a_file_names_the_line_of_its_key(tmp_path):
    path = tmp_path / "lines.yaml"
    path.write_text("task: captioning\ntrain:\n  lr: 0.1\n  epochs: 0\nmodel:\n  encoder: {outptu: grid}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:6: unknown key 'model.encoder.outptu' (valid")):
        load_config(path)
    with pytest.raises(ConfigError, match=re.escape(f"{path}:4: key 'train.epochs' must be >= 1, got 0")):
        load_config(path, ["model.encoder={name: resnet18}"])
    # a value given on the command line is not on the file's line: the override is blamed
    with pytest.raises(
        ConfigError, match=re.escape("override 'train.epochs=-1': key 'train.epochs' must be >= 1, got -1")
    ):
        load_config(path, ["model.encoder={}", "train.epochs=-1"])


def test_unknown_keys_list_the_valid_ones_and_come_first():
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["train.epochs=0", "train.epochz=3"])
    assert "unknown key 'train.epochz' (valid keys here: amp, batch_size, " in str(caught.value)
    assert "epochs, grad_clip" in str(caught.value)


def test_numbers_are_not_flags_and_yaml_strings_of_numbers_are_floats():
    with pytest.raises(ConfigError, match=r"key 'train\.epochs' must be int, got True"):
        load_config(None, ["train.epochs=true"])
    with pytest.raises(ConfigError, match=r"key 'train\.lr' must be float, got True"):
        load_config(None, ["train.lr=true"])
    config = load_config(None, ["train.lr=1e-4", "model.encoder.trainable_from=6"])
    assert config.train.lr == 1e-4 and config.model.encoder.trainable_from == "6"


def test_stored_configs_are_not_judged_by_the_cross_field_rules():
    """A checkpoint's config loads even when a rule written after it refuses its settings."""
    raw = config_to_dict(load_config(None, ["model.decoder.kind=attention", "model.encoder.output=grid"]))
    raw["model"]["encoder"]["output"] = "pooled"
    assert config_from_dict(raw).model.encoder.output == "pooled"
    with pytest.raises(ConfigError, match=r"needs model\.encoder\.output 'grid'"):
        check_consistency(config_from_dict(raw))


def test_both_video_tasks_share_the_frame_keys():
    shared = {f.name for f in dataclasses.fields(ClipFramesConfig)}
    assert {"num_frames", "sampling", "frame_stride", "cache_frames", "cache_dir"} <= shared
    for task in ("video_classification", "video_captioning"):
        config = load_config(None, [f"task={task}", "data.num_frames=4", "data.sampling=dense"])
        assert isinstance(config.data, ClipFramesConfig)
        assert (config.data.num_frames, config.data.sampling) == (4, "dense")
