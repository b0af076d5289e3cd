"""One frame-sampling path: a model trained from the feature cache sees, at evaluation, exactly the frames
``classify`` decodes from the file (dense windows ``frame_stride`` apart), and ``evaluate`` after training
reuses the training run's cache instead of building a new one."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from video_fixtures import frame_index_of, index_coded_frames, write_video

from vision2seq.__main__ import main
from vision2seq.config import load_config
from vision2seq.data.sampling import ClipSampling, FrameGrid
from vision2seq.data.video.clips import VideoClipDataset
from vision2seq.data.video.datasets import VideoSample
from vision2seq.data.video.loaders import CachedClips, clip_datasets, load_video_list
from vision2seq.data.video.reader import read_sampled_frames
from vision2seq.evaluate import evaluate_checkpoint
from vision2seq.inference.classifier import VideoClassifier

LENGTHS = (37, 50, 61)  # frames per clip; different lengths put the windows at different places
CONFIG = """\
task: video_classification
output_dir: {out}
seed: 0
data: {{videos: {videos}, num_frames: 4, sampling: dense, frame_stride: 3, test_clips: 2,
        cache_frames: 24, cache_dir: {cache}, val_fraction: 0.3}}
model:
  encoder: {{name: resnet18, weights: null, image_size: 32}}
  temporal: {{kind: lstm, hidden_dim: 8, dropout: 0.0}}
train: {{epochs: 1, batch_size: 4, lr: 0.01, num_workers: 0}}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Clips of index-coded frames in class folders, and a model trained on them from the cache."""
    root = tmp_path_factory.mktemp("spacing")
    videos = root / "videos"
    for name in ("Left", "Right"):
        for group, length in enumerate(LENGTHS, start=1):
            write_video(videos / name / f"v_{name}_g{group:02d}_c01.avi", index_coded_frames(length))
    config = root / "video.yaml"
    config.write_text(CONFIG.format(out=root / "run", videos=videos, cache=root / "cache"))
    assert main(["train", str(config), "--quiet"]) == 0
    return root, config, root / "run" / "best.pt"


def cache_folders(root: Path) -> list[Path]:
    return sorted((root / "cache" / "video_features").iterdir())


def test_cached_evaluation_sees_the_frames_classify_decodes(trained) -> None:
    _, config_path, best = trained
    config = load_config(config_path)
    classifier = VideoClassifier.from_checkpoint(best, device="cpu")
    val = load_video_list(config, "val")
    assert val.samples
    [cached] = clip_datasets(config, classifier.model.encoder, [(val, False)], torch.device("cpu"))
    assert isinstance(cached, CachedClips)
    sampling = ClipSampling.from_config(config.data)
    raw = VideoClipDataset(
        val, 4, mode="dense", stride=3, num_clips=2, clip_transform=classifier.transform
    )  # the dataset classify() decodes with
    for i, sample in enumerate(val.samples):
        # classify's frames: two windows of 4 frames exactly frame_stride (3) apart
        decoded = read_sampled_frames(sample.path, raw.index_sampler(i))
        n = decoded.num_frames
        shown = [frame_index_of(f, n) for f in decoded.frames]
        expected = [j for clip in sampling.eval_indices(n) for j in clip]
        assert shown == expected
        assert all(b - a == 3 for clip in sampling.eval_indices(n) for a, b in itertools.pairwise(clip))
        # the cache's evaluation rows hold those very frames: same encoder features (float16 store)
        with torch.no_grad():
            from_file = classifier._encode(raw[i][0])  # (N, T, D)
        from_cache = cached[i]["features"]  # (N, T, D)
        assert from_cache.shape == from_file.shape == (2, 4, classifier.model.encoder.feature_dim)
        torch.testing.assert_close(from_cache, from_file, rtol=1e-2, atol=1e-2)
        # ... and not the stride-1 neighbours the cache used to serve
        neighbour = VideoClipDataset(
            val, 4, mode="dense", stride=1, num_clips=2, clip_transform=raw.clip_transform
        )
        with torch.no_grad():
            assert not torch.allclose(from_cache, classifier._encode(neighbour[i][0]), atol=1e-2)


def test_cached_training_clips_keep_the_configured_stride(trained) -> None:
    _, config_path, _ = trained
    config = load_config(config_path)
    grid = FrameGrid.for_cache(ClipSampling.from_config(config.data), config.data.cache_frames)
    assert (grid.num_clips, grid.size) == (6, 24)  # 2 test clips x 3 (odd) positions, 4 frames each
    for n in LENGTHS:
        frames = grid.frame_indices(n)
        for seed in range(20):
            clip = [frames[r] for r in grid.train_rows(np.random.default_rng(seed))]
            assert [b - a for a, b in itertools.pairwise(clip)] == [3, 3, 3]


def test_evaluate_after_training_reuses_the_training_cache(trained, capsys) -> None:
    root, _, best = trained
    before = cache_folders(root)
    assert len(before) == 1
    metrics = evaluate_checkpoint(best, "val", device="cpu", progress=False)
    assert 0.0 <= metrics["top1"] <= 1.0
    assert cache_folders(root) == before  # no second cache: the clips were not decoded again


def test_folder_layout_has_no_test_split(trained, capsys) -> None:
    _, _, best = trained
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(best), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no 'test' split (available: train, val)" in err and len(err.strip().splitlines()) == 1


def test_streaming_preprocesses_frames_exactly_as_classify(trained) -> None:
    *_, best = trained
    loaded = VideoClassifier.from_checkpoint(best, device="cpu")
    config = loaded.with_overrides(["data.test_clips=1"])  # one clip, so a stream can replay it
    classifier = VideoClassifier(loaded.model, loaded.class_names, config, "cpu")
    path = load_video_list(config, "val").samples[0].path
    clips = VideoClipDataset(
        [VideoSample(path, 0)], 4, mode="dense", stride=3, clip_transform=classifier.transform
    )
    decoded = read_sampled_frames(path, clips.index_sampler(0))
    assert torch.equal(classifier.preprocess(decoded.frames), clips[0][0])  # the same pixels
    stream = classifier.stream()
    for frame in decoded.frames:
        streamed = stream.push(frame)
    [result] = classifier.classify([path], top_k=2, num_workers=0)
    classified = dict(result.labels)
    for name, p in zip(classifier.class_names, streamed.tolist(), strict=True):
        assert abs(classified[name] - p) < 1e-5
