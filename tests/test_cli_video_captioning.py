"""End to end for video captioning: train, resume and evaluate through ``python -m vision2seq`` on an
MSR-VTT layout of generated .mp4 clips; caption through the Python API with a corrupt clip among good
ones; checkpoints of the other video task refused both ways."""

import csv
import json
import shutil
from pathlib import Path

import pytest
import tiny_models
import torch
from tiny_models import assert_one_error, run_cli, run_module
from video_caption_fixtures import motion_clips, write_clips, write_msrvtt
from video_fixtures import make_truncated

from vision2seq.engine.checkpoint import CheckpointError, load_checkpoint
from vision2seq.evaluation.caption_metrics import METRIC_NAMES
from vision2seq.inference.video_captioner import VideoCaptioner, find_inputs, load_captioner

pytestmark = pytest.mark.slow  # trains through the command line

tiny_video = tiny_models.tiny_video
torch_one_thread = tiny_models.torch_one_thread

CONFIG = """\
task: video_captioning
output_dir: {out}
seed: 0
data: {{videos: {videos}, annotations: {annotations}, num_frames: 4, cache_frames: 8, cache_dir: {cache},
        min_word_freq: 1}}
model:
  encoder: {{name: resnet18, weights: null, image_size: 32}}
  temporal: {{hidden_dim: 8, dropout: 0.0}}
  decoder: {{embed_dim: 8, hidden_dim: 16, attention_dim: 8, dropout: 0.0}}
train: {{epochs: 2, batch_size: 8, lr: 0.01, num_workers: 0}}
generation: {{beam_size: 2, max_len: 8}}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("msrvtt")
    shapes = {"train": [(8, 4), (10, 12)], "validate": [(12, 8)], "test": [(8, 16)]}
    clips = motion_clips(shapes, ["red", "blue"])
    write_clips(root / "videos", clips, frame_folders=False)
    [annotations] = write_msrvtt(root, clips)
    config = root / "msrvtt.yaml"
    config.write_text(
        CONFIG.format(out=root / "run", videos=root / "videos", annotations=annotations, cache=root / "cache")
    )
    result = run_module("train", config, "--quiet")
    assert result.returncode == 0, result.stderr
    return root, config, root / "run" / "best.pt", clips


def test_train_resume_and_evaluate_through_the_module(run):
    root, config, best, _ = run
    assert best.is_file() and (root / "run" / "last.pt").is_file()
    result = run_module("train", config, "train.epochs=3", "--resume", "--quiet")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((root / "run" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert load_checkpoint(root / "run" / "last.pt")["epoch"] == 3
    assert {"cider", "bleu_4"} <= set(rows[-1])

    result = run_module("evaluate", "--checkpoint", best, "--split", "test", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics) == set(METRIC_NAMES)  # the keys of image captioning
    assert all(0.0 <= metrics[k] <= 1.0 for k in METRIC_NAMES if k != "cider")


def test_caption_files_reports_a_corrupt_clip_and_captions_the_rest(run, tmp_path):
    root, _, best, clips = run
    good = [root / "videos" / f"{c.key}.mp4" for c in clips if c.split == "test"][:3]
    broken = make_truncated(good[0], tmp_path / "broken.mp4", keep_fraction=0.02)
    (tmp_path / "notes.mp4").write_text("not a video")
    inputs = [good[0], broken, good[1], tmp_path / "notes.mp4", good[2]]
    captioner = VideoCaptioner.from_checkpoint(best, device="cpu")
    results = list(captioner.caption_files(inputs, batch_size=2, num_workers=0, return_attention=True))
    assert [r.file for r in results] == [str(p) for p in inputs]  # input order, bad ones included
    for result in (results[1], results[3]):
        assert result.caption is None and Path(result.file).name in result.error and "\n" not in result.error
    good_results = [results[0], results[2], results[4]]
    assert all(r.error is None and isinstance(r.caption, str) for r in good_results)
    assert [r.caption for r in good_results] == captioner.caption(good)  # both entry points agree
    for r in good_results:  # attention over the 4 sampled frames, one row per generated token
        assert r.attention.shape[1] == 4
        torch.testing.assert_close(r.attention.sum(1), torch.ones(r.attention.shape[0]))


def test_load_captioner_picks_the_video_captioner_and_expands_video_inputs(run, tmp_path):
    root, _, best, clips = run
    captioner = load_captioner(best, device="cpu")
    assert isinstance(captioner, VideoCaptioner)
    folder = tmp_path / "clips"
    folder.mkdir()
    for c in clips[:3]:
        shutil.copy(root / "videos" / f"{c.key}.mp4", folder)
    pattern, nothing = str(root / "videos" / "test_*.mp4"), str(tmp_path / "none*")
    paths, errors = find_inputs(captioner, [str(folder), pattern, nothing])
    assert [p.name for p in paths[:3]] == sorted(f"{c.key}.mp4" for c in clips[:3])
    assert [p.name for p in paths[3:]] == sorted(f"{c.key}.mp4" for c in clips if c.split == "test")
    assert errors == [f"{nothing}: pattern matched no video files"]


def test_checkpoints_of_the_other_video_task_are_refused(run, tiny_video, capsys):
    _, _, best, _ = run
    refused = r"'video_classification' checkpoint.*use `vision2seq classify`"
    with pytest.raises(CheckpointError, match=refused):
        load_captioner(tiny_video.checkpoint, device="cpu")
    with pytest.raises(CheckpointError, match=refused):
        VideoCaptioner.from_checkpoint(tiny_video.checkpoint, device="cpu")
    code, _, err = run_cli(capsys, "classify", "--checkpoint", best, str(tiny_video.data))
    assert code == 1
    assert_one_error(err, "classify", "'video_captioning' checkpoint", "use `vision2seq caption`")


def test_caption_command_captions_clips_and_reports_bad_ones(run, tmp_path, capsys):
    root, _, best, clips = run
    good = [root / "videos" / f"{c.key}.mp4" for c in clips if c.split == "test"][:2]
    for clip in good:
        shutil.copy(clip, tmp_path)
    make_truncated(good[0], tmp_path / "broken.mp4", keep_fraction=0.02)
    code, out, err = run_cli(capsys, "caption", "--checkpoint", best, "--json", "--workers", "0", tmp_path)
    assert code == 1
    rows = json.loads(out)
    assert sorted(Path(r["file"]).name for r in rows) == sorted(c.name for c in good)
    assert all(set(r) == {"file", "caption"} and isinstance(r["caption"], str) for r in rows)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "broken.mp4" in lines[0] and "Traceback" not in err


def test_scst_fine_tunes_a_video_captioner_from_its_xent_checkpoint(run, tmp_path):
    """SCST is the captioning task's, so video captioning has it too: it starts from the cross-entropy
    weights, samples clip captions, rewards them with CIDEr-D and moves the weights."""
    _, config, best, _ = run
    out = tmp_path / "scst"
    result = run_module(
        "train",
        config,
        f"output_dir={out}",
        "train.objective=scst",
        f"train.init_from={best}",
        "train.scst_samples=2",
        "train.epochs=1",
        "train.lr=0.001",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    start, tuned = load_checkpoint(best)["model"], load_checkpoint(out / "last.pt")["model"]
    assert tuned.keys() == start.keys()
    moved = {k for k in start if not torch.equal(start[k], tuned[k])}
    statistics = {k for k in start if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    # Every trained parameter moved; batch norm's running statistics did not: the whole policy, temporal
    # encoder included, samples in eval mode (batch statistics would have moved them).
    trained = {k for k in start if k.startswith(("decoder.", "temporal.")) and k not in statistics}
    assert trained and trained <= moved and not moved & statistics
