"""Why video captioning uses an order-aware encoder: captions that name both what moves (the square's
colour) and which way (left or right) are learnt, on held-out clips, by the LSTM over the frames; the
mean-pool baseline can name the colour but not the direction.

The clips are folders of lossless PNG frames in the MSR-VTT layout, so a left-moving clip and its
right-moving twin hold exactly the same frames: only their order tells them apart."""

import random

import pytest
from video_caption_fixtures import COLOURS, DIRECTIONS, motion_clips, write_clips, write_msrvtt

from vision2seq.config import load_config
from vision2seq.inference.video_captioner import VideoCaptioner
from vision2seq.train import train

pytestmark = pytest.mark.slow  # trains two models


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion_captions")
    rng = random.Random(0)
    # (square side, top row) per clip pair; held-out clips have shapes no training clip has.
    shapes = rng.sample([(side, top) for side in (8, 10, 12) for top in range(2, 21)], 10)
    clips = motion_clips({"train": shapes[:7], "validate": shapes[7:8], "test": shapes[8:]})
    write_clips(root / "videos", clips, frame_folders=True)
    [annotations] = write_msrvtt(root, clips)
    return root, annotations, [c for c in clips if c.split == "test"]


def run(dataset, tmp_path, kind):
    root, annotations, _ = dataset
    config = load_config(
        None,
        [
            "task=video_captioning",
            f"output_dir={tmp_path / kind}",
            f"data.videos={root / 'videos'}",
            f"data.annotations={annotations}",
            "data.num_frames=8",
            "data.cache_frames=8",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.min_word_freq=1",
            "model.encoder.name=resnet18",
            "model.encoder.weights=null",
            "model.encoder.image_size=32",
            f"model.temporal.kind={kind}",
            "model.temporal.hidden_dim=32",
            "model.temporal.dropout=0.0",
            "model.decoder.embed_dim=16",
            "model.decoder.hidden_dim=32",
            "model.decoder.attention_dim=16",
            "model.decoder.dropout=0.0",
            "train.epochs=30",
            "train.batch_size=16",
            "train.lr=0.01",
            "train.num_workers=0",
            "generation.beam_size=1",
            "generation.max_len=10",
        ],
    )
    train(config, progress=False)
    return VideoCaptioner.from_checkpoint(tmp_path / kind / "best.pt", device="cpu")


def named(caption, words):
    """The one word of ``words`` the caption names, or None (none or several)."""
    found = [w for w in words if w in caption.split()]
    return found[0] if len(found) == 1 else None


def test_lstm_names_colour_and_direction_and_mean_pool_cannot_tell_direction(dataset, tmp_path):
    _, _, test = dataset
    root = dataset[0] / "videos"
    paths = [root / c.key for c in test]
    lstm = run(dataset, tmp_path, "lstm").caption(paths)
    mean = run(dataset, tmp_path, "mean").caption(paths)
    for clip, caption in zip(test, lstm, strict=True):
        assert named(caption.rstrip("."), COLOURS) == clip.colour, (clip.key, caption)
        assert named(caption.rstrip("."), DIRECTIONS) == clip.direction, (clip.key, caption)
    assert [named(c.rstrip("."), COLOURS) for c in mean] == [clip.colour for clip in test], mean
    # Twins (same frames, opposite order) get the same memory, hence the same caption: at most one of
    # each pair names its direction.
    directions = [named(c.rstrip("."), DIRECTIONS) for c in mean]
    assert sum(d == clip.direction for d, clip in zip(directions, test, strict=True)) <= len(test) // 2, mean
    assert mean[0::2] == mean[1::2]  # left and right twins are neighbours in the list
