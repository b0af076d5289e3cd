"""End to end through the command line for video: train on a UCF101 layout, evaluate, classify (with a
corrupt clip among good ones), stream, and decode the real clips in ../shared/data/real_videos."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from video_fixtures import make_hmdb51_layout, make_truncated, make_ucf101_layout, moving_square_frames

from vision2seq.__main__ import main
from vision2seq.config import load_config
from vision2seq.data.video.loaders import load_video_list
from vision2seq.inference.classifier import VideoClassifier

REAL_VIDEOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real_videos"

CONFIG = """\
task: video_classification
output_dir: {out}
seed: 0
data: {{videos: {videos}, annotations: {annotations}, num_frames: 8, cache_frames: 8, cache_dir: {cache},
        test_clips: 2}}
model:
  encoder: {{name: resnet18, weights: null, image_size: 32}}
  temporal: {{kind: lstm, hidden_dim: 32, dropout: 0.0}}
train: {{epochs: 8, batch_size: 8, lr: 0.01, num_workers: 0}}
"""


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf")
    videos, annotations = make_ucf101_layout(
        root / "data", groups=5, clips_per_group=2, test_groups=(1, 2), num_frames=8, size=(32, 32)
    )
    config = root / "video.yaml"
    config.write_text(
        CONFIG.format(out=root / "run", videos=videos, annotations=annotations, cache=root / "cache")
    )
    assert main(["train", str(config), "--quiet"]) == 0
    return root, videos, root / "run" / "best.pt"


def test_train_and_evaluate(ucf, capsys):
    root, _, best = ucf
    assert best.is_file() and (root / "run" / "last.pt").is_file()
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(best), "--json", "--quiet"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"top1", "mean_class_accuracy", "per_class", "confusion_matrix", "clip_top1"} <= set(metrics)
    assert metrics["top1"] == 1.0  # left vs right motion is learnt by the LSTM
    assert [row["class"] for row in metrics["per_class"]] == ["MoveLeft", "MoveRight"]
    assert (root / "run" / "confusion_test.csv").read_text().startswith("true\\predicted,MoveLeft,MoveRight")


def test_classify_reports_corrupt_clip_and_classifies_the_rest(ucf, tmp_path, capsys):
    _, videos, best = ucf
    good = sorted((videos / "MoveRight").glob("*.avi"))[:2] + sorted((videos / "MoveLeft").glob("*.avi"))[:1]
    for clip in good:
        shutil.copy(clip, tmp_path)
    make_truncated(good[0], tmp_path / "broken.avi", keep_fraction=0.02)
    (tmp_path / "notes.mp4").write_text("not a video")
    capsys.readouterr()
    code = main(
        ["classify", "--checkpoint", str(best), str(tmp_path), "--json", "--workers", "0", "--top-k", "2"]
    )
    out, err = capsys.readouterr()
    assert code == 1
    rows = json.loads(out)
    assert sorted(Path(r["file"]).name for r in rows) == sorted(c.name for c in good)
    for row in rows:
        assert row["labels"][0]["label"] == Path(row["file"]).name.split("_")[1]
        scores = [label["score"] for label in row["labels"]]
        assert scores == sorted(scores, reverse=True) and len(scores) == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in err
    assert any("broken.avi" in line for line in lines) and any("notes.mp4" in line for line in lines)

    assert main(["classify", "--checkpoint", str(best), str(good[0])]) == 0
    path, label, score = capsys.readouterr().out.strip().split("\t")
    assert (Path(path).name, label) == (good[0].name, "MoveRight") and 0.5 < float(score) <= 1.0


def test_stream_cli_and_streaming_equals_batch(ucf, capsys):
    _, videos, best = ucf
    clip = sorted((videos / "MoveLeft").glob("*.avi"))[0]
    capsys.readouterr()
    assert main(["classify", "--checkpoint", str(best), "--stream", str(clip)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 8  # one running prediction per frame
    assert lines[0].split("\t")[1] == "0.000s" and lines[-1].split("\t")[3] == "MoveLeft"

    classifier = VideoClassifier.from_checkpoint(best, device="cpu")
    frames = list(moving_square_frames(8, 32, 32, "right"))
    stream = classifier.stream()
    for frame in frames:
        probs = stream.push(frame)
    torch.testing.assert_close(probs, classifier.classify_frames(frames), rtol=1e-5, atol=1e-6)
    stream.reset()
    torch.testing.assert_close(
        stream.push(frames[0]), classifier.classify_frames(frames[:1]), rtol=1e-5, atol=1e-6
    )


def test_wrong_checkpoint_kind_is_refused(ucf, tmp_path, capsys):
    _, _, best = ucf
    capsys.readouterr()
    assert main(["caption", "--checkpoint", str(best), str(tmp_path)]) == 1
    assert (
        "'video_classification' checkpoint, but a 'captioning' or 'video_captioning' checkpoint is needed"
        in capsys.readouterr().err
    )


def test_hmdb51_layout_is_read_from_config(tmp_path):
    videos, annotations = make_hmdb51_layout(tmp_path, num_frames=4, size=(32, 32))
    config = load_config(
        None, ["task=video_classification", f"data.videos={videos}", f"data.annotations={annotations}"]
    )
    train, test = load_video_list(config, "train"), load_video_list(config, "test")
    assert train.class_names == test.class_names and train.samples and test.samples
    assert not {s.path for s in train.samples} & {s.path for s in test.samples}


@pytest.mark.skipif(not REAL_VIDEOS.is_dir(), reason="../shared/data/real_videos not present")
def test_real_clips_decode_and_classify(ucf, capsys):
    _, _, best = ucf
    clips = sorted(p for p in REAL_VIDEOS.iterdir() if p.suffix in (".avi", ".mp4"))
    assert len(clips) == 8
    capsys.readouterr()
    assert main(["classify", "--checkpoint", str(best), "--json", "--workers", "0", *map(str, clips)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [Path(r["file"]).name for r in rows] == [c.name for c in clips]
    assert all(r["labels"][0]["label"] in ("MoveLeft", "MoveRight") for r in rows)
