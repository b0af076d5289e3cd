"""Why the toolkit uses an LSTM: classes that differ only in the ORDER of their frames (a square moving
left vs right) are learnt by the LSTM classifier, while the mean-pool baseline stays at chance.

The clips are folders of lossless PNG frames (extracted-frames datasets), so a right-moving clip and its
left-moving twin hold exactly the same frames.

The runs use the shipped ``configs/ucf101_lstm.yaml`` as a user would: its optimiser, learning rate,
weight decay, schedule (warm-up as a fraction of the run, cosine decay), gradient clipping, dropout and
feature normalisation. Only the data, the offline encoder, the clip length, the batch size (36 training
clips) and the LSTM width (speed) are overridden."""

import random
from pathlib import Path

import pytest
from video_fixtures import moving_square_frames, write_frame_folder

from vision2seq.config import load_config
from vision2seq.train import train

pytestmark = pytest.mark.slow  # two training runs

SHIPPED = Path(__file__).resolve().parents[1] / "configs" / "ucf101_lstm.yaml"


@pytest.fixture(scope="module")
def motion_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion")
    rng = random.Random(0)
    shapes = [(rng.choice([8, 10, 12]), rng.randint(2, 20)) for _ in range(24)]  # (side, top) per clip
    for direction, name in (("right", "MovingRight"), ("left", "MovingLeft")):
        for n, (square, top) in enumerate(shapes):
            frames = moving_square_frames(8, 32, 32, direction, square=square, top=top)
            clip = root / name / f"v_{name}_g{n // 2 + 1:02d}_c{n % 2 + 1:02d}"  # UCF-style groups of two
            write_frame_folder(clip, frames, "img_{:05d}.png")
    return root


def run(root, tmp_path, kind):
    config = load_config(
        SHIPPED,
        [
            f"output_dir={tmp_path / kind}",
            f"data.videos={root}",
            "data.annotations=null",  # a folder per class, seeded train/val split
            "data.format=auto",
            "data.num_frames=8",
            "data.cache_frames=8",
            "data.test_clips=1",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.val_fraction=0.25",
            "model.encoder.name=resnet18",
            "model.encoder.weights=null",
            "model.encoder.image_size=32",
            f"model.temporal.kind={kind}",
            "model.temporal.hidden_dim=64",
            "train.epochs=25",
            "train.batch_size=8",
            "train.num_workers=0",
        ],
    )
    shipped = load_config(SHIPPED)
    for key in (
        "optimizer",
        "lr",
        "weight_decay",
        "scheduler",
        "warmup_steps",
        "warmup_fraction",
        "grad_clip",
    ):
        assert getattr(config.train, key) == getattr(shipped.train, key)
    return train(config, progress=False)


def test_lstm_learns_frame_order_and_mean_pool_baseline_cannot(motion_dataset, tmp_path):
    lstm = run(motion_dataset, tmp_path, "lstm")
    mean = run(motion_dataset, tmp_path, "mean")
    assert lstm.best_metric >= 0.9, lstm.last_metrics
    # The two classes hold the same frames in opposite order (each validation clip has its reversed twin
    # there): their mean features are identical, so exactly one of each pair is right.
    assert mean.best_metric == 0.5, mean.last_metrics
