"""End to end through the command line: train, resume, caption a folder with bad files, evaluate."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vision2seq.__main__ import main
from vision2seq.demo import make_shapes_dataset
from vision2seq.engine.checkpoint import load_checkpoint, save_checkpoint
from vision2seq.inference.captioner import Captioner

CONFIG = """\
task: captioning
output_dir: {out}
seed: 3
data:
  annotations: {data}/dataset_shapes.json
  images: {data}/images
  train_splits: [train]
  min_word_freq: 1
  cache_dir: {cache}
model:
  encoder: {{name: resnet18, weights: null, output: grid, image_size: 64}}
  decoder: {{kind: attention, embed_dim: 16, hidden_dim: 32, attention_dim: 16, dropout: 0.0}}
train: {{epochs: 2, batch_size: 16, lr: 0.005, num_workers: 0}}
generation: {{beam_size: 2, max_len: 12}}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("captioning")
    make_shapes_dataset(root / "data", n_train=40, n_val=6, n_test=6, seed=1)
    config = root / "tiny.yaml"
    config.write_text(CONFIG.format(out=root / "run", data=root / "data", cache=root / "cache"))
    assert main(["train", str(config), "train.epochs=1", "--quiet"]) == 0
    assert main(["train", str(config), "--resume", "--quiet"]) == 0  # continues to epoch 2
    return root, config


def test_train_writes_checkpoints_and_resume_matches_an_uninterrupted_run(trained):
    root, config = trained
    run = root / "run"
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,step") and "bleu_4" in lines[0] and len(lines) == 3
    assert main(["train", str(config), f"output_dir={root / 'straight'}", "--quiet"]) == 0
    resumed = load_checkpoint(run / "last.pt")
    straight = load_checkpoint(root / "straight" / "last.pt")
    assert resumed["epoch"] == straight["epoch"] == 2
    for name, tensor in straight["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, msg=name)


def test_training_into_a_used_output_dir_needs_resume(trained, capsys):
    _, config = trained
    assert main(["train", str(config), "--quiet"]) == 1
    assert "pass --resume" in capsys.readouterr().err


def test_caption_folder_with_corrupt_files(trained, tmp_path, capsys):
    root, _ = trained
    images = sorted((root / "data" / "images").glob("*.png"))[:3]
    for image in images:
        shutil.copy(image, tmp_path)
    (tmp_path / "notes.jpg").write_text("this is not an image")
    truncated = (root / "data" / "images" / images[0].name).read_bytes()
    (tmp_path / "truncated.png").write_bytes(truncated[: len(truncated) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    capsys.readouterr()
    code = main(["caption", "--checkpoint", str(root / "run" / "best.pt"), str(tmp_path), "--workers", "0"])
    out, err = capsys.readouterr()
    assert code == 1
    rows = [line.split("\t") for line in out.splitlines()]
    assert sorted(Path(p).name for p, _ in rows) == sorted(i.name for i in images)
    assert all(caption.strip() for _, caption in rows)
    errors = err.strip().splitlines()
    assert len(errors) == 3 and "Traceback" not in err
    assert any("notes.jpg" in e and "not an image" in e for e in errors)
    assert any("truncated.png" in e and "truncated" in e for e in errors)
    assert any("empty.jpg" in e and "empty file" in e for e in errors)

    code = main(
        [
            "caption",
            "--checkpoint",
            str(root / "run" / "best.pt"),
            "--json",
            "--beam-size",
            "1",
            str(tmp_path / "*.png"),
        ]
    )
    out, _ = capsys.readouterr()
    payload = json.loads(out)
    assert code == 1  # truncated.png matches the glob too
    assert [set(item) for item in payload] == [{"file", "caption"}] * 3


def test_evaluate_prints_bleu(trained, capsys):
    root, _ = trained
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(root / "run" / "best.pt"), "--json", "--quiet"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4"):
        assert 0.0 <= metrics[key] <= 1.0
    # Even 16 steps learn some frequent words (less than on raw features: standardised image features
    # vary by image from the first step, so the word prior alone is learnt more slowly).
    assert metrics["bleu_1"] > 0.1


def test_reloaded_checkpoint_gives_identical_captions(trained, tmp_path, capsys):
    root, _ = trained
    images = sorted((root / "data" / "images").glob("*.png"))[-4:]
    first = Captioner.from_checkpoint(root / "run" / "best.pt", device="cpu")
    captions = first.caption(images)
    copy = tmp_path / "copy.pt"
    save_checkpoint(
        copy, {k: v for k, v in load_checkpoint(root / "run" / "best.pt").items() if k != "format_version"}
    )
    assert Captioner.from_checkpoint(copy, device="cpu").caption(images) == captions
    # The Python API and the command line give the same captions for the same files and settings.
    capsys.readouterr()
    assert main(["caption", "--checkpoint", str(copy), "--json", "--workers", "0", *map(str, images)]) == 0
    assert [row["caption"] for row in json.loads(capsys.readouterr().out)] == captions


def test_user_errors_are_one_line_without_traceback(trained, tmp_path, capsys):
    root, config = trained
    assert main(["caption", "--checkpoint", str(tmp_path / "missing.pt"), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "missing.pt: checkpoint not found" in err and len(err.strip().splitlines()) == 1
    assert main(["train", str(config), "train.epochz=1"]) == 2
    assert "unknown key 'train.epochz'" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes((root / "run" / "best.pt").read_bytes()[:1000])
    assert main(["caption", "--checkpoint", str(bad), str(tmp_path)]) == 1
    assert "truncated or corrupt" in capsys.readouterr().err


def test_python_dash_m_entry_point_usage_error():
    proc = subprocess.run([sys.executable, "-m", "vision2seq", "caption"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--checkpoint" in proc.stderr


def test_generation_strategies_from_config(trained):
    root, _ = trained
    images = sorted((root / "data" / "images").glob("*.png"))[:4]
    captioner = Captioner.from_checkpoint(root / "run" / "best.pt", device="cpu")
    greedy = captioner.caption(images, beam_size=1)
    captioner.config = captioner.with_overrides(["generation.strategy=sample", "generation.top_k=1"])
    assert captioner.caption(images) == greedy  # sampling from the single most likely word is greedy
    captioner.config = captioner.with_overrides(["generation.top_k=0", "generation.temperature=5.0"])
    torch.manual_seed(0)
    hot = captioner.caption(images[:1] * 16)  # one image, sixteen draws from a flattened distribution
    assert len(set(hot)) > 1 and set(hot) != {greedy[0]}
