"""Tiny trained checkpoints shared by the bad-input tests, and helpers to run the CLI.

One captioner and one video classifier are trained once per test session (about a second each on 2 CPU
cores), however many test files use them. A test module takes the fixtures with
``tiny_captioner = tiny_models.tiny_captioner`` (pytest then registers one fixture per module); the
fixtures cache what they built in this module, so the models are still trained only once.
``torch_one_thread``, taken the same way, is autouse in that module.

Both training sets list one file that does not exist, with ``data.skip_missing=true``: the runs prove
that a configured skip trains on the rest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from video_fixtures import make_ucf101_layout

from vision2seq.__main__ import main
from vision2seq.demo import make_shapes_dataset

CAPTION_CONFIG = """\
task: captioning
output_dir: {out}
seed: 0
data:
  annotations: {annotations}
  images: {images}
  train_splits: [train]
  min_word_freq: 1
  cache_dir: {cache}
  skip_missing: true
model:
  encoder: {{name: resnet18, weights: null, output: pooled, image_size: 32}}
  decoder: {{kind: show_tell, embed_dim: 8, hidden_dim: 16, dropout: 0.0}}
train: {{epochs: 1, batch_size: 8, lr: 0.01, num_workers: 0}}
generation: {{beam_size: 1, max_len: 8}}
"""

VIDEO_CONFIG = """\
task: video_classification
output_dir: {out}
seed: 0
data: {{videos: {videos}, annotations: {annotations}, num_frames: 4, cache_frames: 4, cache_dir: {cache},
        skip_missing: true}}
model:
  encoder: {{name: resnet18, weights: null, image_size: 32}}
  temporal: {{kind: lstm, hidden_dim: 8, dropout: 0.0}}
train: {{epochs: 1, batch_size: 4, lr: 0.01, num_workers: 0}}
"""

MISSING_IMAGE = "not_there.png"
MISSING_VIDEO = "MoveLeft/v_MoveLeft_g09_c01.avi"


@dataclass(frozen=True)
class TinyRun:
    """A trained tiny model and the files it was trained from.

    Attributes:
        root: Folder holding everything below.
        config: The experiment YAML.
        checkpoint: ``best.pt``.
        data: The image folder (captioning) or the video root (video).
        annotations: The Karpathy JSON (captioning) or the UCF101 ``ucfTrainTestlist`` folder (video).
        cache: The feature-cache folder the config names.
    """

    root: Path
    config: Path
    checkpoint: Path
    data: Path
    annotations: Path
    cache: Path


_built: dict[str, TinyRun] = {}


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: these models are tiny, and on a busy 2-core machine two OpenMP threads
    waiting for each other make every small op up to 40x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module", autouse=True)
def torch_one_thread() -> Iterator[None]:
    """Autouse in every module that imports it: its tests run torch on one thread (restored after)."""
    with one_thread():
        yield


def _train_captioner(root: Path) -> TinyRun:
    annotations = make_shapes_dataset(root / "data", n_train=8, n_val=2, n_test=3, seed=1)
    dataset = json.loads(annotations.read_text())
    missing = {"filename": MISSING_IMAGE, "imgid": 999, "split": "train", "sentences": [{"raw": "a shape"}]}
    dataset["images"].append(missing)
    annotations.write_text(json.dumps(dataset))
    images, cache = root / "data" / "images", root / "cache"
    config = root / "caption.yaml"
    config.write_text(
        CAPTION_CONFIG.format(out=root / "run", annotations=annotations, images=images, cache=cache)
    )
    assert main(["train", str(config), "--quiet"]) == 0
    return TinyRun(root, config, root / "run" / "best.pt", images, annotations, cache)


def _train_video_classifier(root: Path) -> TinyRun:
    videos, annotations = make_ucf101_layout(
        root / "data", groups=3, clips_per_group=1, test_groups=(1,), num_frames=4, size=(32, 32)
    )
    with (annotations / "trainlist01.txt").open("ab") as f:
        f.write(f"{MISSING_VIDEO} 1\r\n".encode())
    cache = root / "cache"
    config = root / "video.yaml"
    config.write_text(
        VIDEO_CONFIG.format(out=root / "run", videos=videos, annotations=annotations, cache=cache)
    )
    assert main(["train", str(config), "--quiet"]) == 0
    return TinyRun(root, config, root / "run" / "best.pt", videos, annotations, cache)


@pytest.fixture(scope="session")
def tiny_captioner(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """A captioning checkpoint trained for one epoch on 8 shape images (32 px, random-init ResNet-18)."""
    if "caption" not in _built:
        with one_thread():
            _built["caption"] = _train_captioner(tmp_path_factory.mktemp("tiny_captioner"))
    return _built["caption"]


@pytest.fixture(scope="session")
def tiny_video(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """A video-classification checkpoint trained for one epoch on a 2-class UCF101 layout (4 frames)."""
    if "video" not in _built:
        with one_thread():
            _built["video"] = _train_video_classifier(tmp_path_factory.mktemp("tiny_video"))
    return _built["video"]


# --- running the CLI --------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def run_module(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    """``python -m vision2seq ARGV`` in a real process (for the real exit status), torch on one thread."""
    return subprocess.run(
        [sys.executable, "-m", "vision2seq", *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """``vision2seq ARGV`` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    """The non-empty stderr lines, after checking that none belongs to a Python traceback."""
    assert "Traceback" not in err, err
    assert 'File "' not in err, err
    return [line for line in err.splitlines() if line.strip()]


def assert_reported(err: str, name: str, reason: str) -> str:
    """Exactly one stderr line names ``name``, and it gives ``reason`` (a substring); returns the line."""
    lines = [line for line in error_lines(err) if name in line]
    assert len(lines) == 1, f"expected one line naming {name!r} in:\n{err}"
    assert reason in lines[0], f"expected {reason!r} in {lines[0]!r}"
    return lines[0]


def assert_one_error(err: str, command: str, *fragments: str) -> str:
    """stderr is the single line ``vision2seq COMMAND: error: ...`` holding every fragment."""
    lines = error_lines(err)
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert lines[0].startswith(f"vision2seq {command}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"expected {fragment!r} in {lines[0]!r}"
    return lines[0]


def train_shipped_config(config: str, annotations: Path, out: Path, overrides: list[str]) -> Path:
    """Train ``configs/<config>.yaml`` through the CLI on a generated Karpathy-format set (training split
    only, cache beside the data, no loader workers) with ``overrides``; returns ``best.pt``."""
    code = main(
        [
            "train",
            str(ROOT / "configs" / f"{config}.yaml"),
            f"data.annotations={annotations}",
            f"data.images={annotations.parent / 'images'}",
            "data.train_splits=[train]",
            f"data.cache_dir={annotations.parent / 'cache'}",
            "train.num_workers=0",
            f"output_dir={out}",
            *overrides,
            "--quiet",
        ]
    )
    assert code == 0
    return out / "best.pt"


def build_feature_cache(encoder, paths: list[Path], root: Path, calls: list[int], encode=None, batch_size=2):
    """The frozen ``encoder``'s feature cache of image ``paths`` under ``root`` (``cached_features``), with
    the size of every batch the encoder runs on appended to ``calls`` (unless ``encode`` replaces it)."""
    from vision2seq.data.features import cached_features, files_fingerprint, module_fingerprint
    from vision2seq.data.images import ImageFiles, collate_good

    def counting(x):
        calls.append(len(x))
        return encoder(x)

    fingerprint = module_fingerprint(encoder, encoder.output, encoder.preprocessing, files_fingerprint(paths))
    return cached_features(
        root,
        fingerprint,
        [str(p) for p in paths],
        ImageFiles(paths, encoder.preprocessing.transform()),
        collate_good,
        encode or counting,
        (encoder.feature_dim,),
        batch_size=batch_size,
        num_workers=0,
        report=lambda line: None,
    )
