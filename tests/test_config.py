from pathlib import Path

import pytest

from vision2seq.config import CaptioningConfig, ConfigError, VideoConfig, load_config

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
