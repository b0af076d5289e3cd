"""Small built-in datasets (and models trained on them in seconds) for the notebooks and demos.

Nothing is downloaded: the videos are generated and encoded with PyAV, the CNN is a random-init
ResNet-18. The datasets are tiny on purpose, so a model trains on a 2-core CPU in well under a minute;
they show how the evaluation tools work, not what a real model achieves.

- :func:`make_motion_videos`: a UCF101-layout dataset of clips of a square moving left, right, up or
  down (``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` plus ``ucfTrainTestlist/``).
- :func:`train_motion_classifier`: generate it and train a small LSTM clip classifier on it.
- :func:`make_motion_caption_videos`: an MSR-VTT-layout dataset of a red, green, blue or yellow square
  moving left, right, up or down, each clip captioned with both (``a red square moves left.``).
- :func:`train_shapes_captioner`: generate the ``vision2seq demo`` shapes (a smaller set) and train a small
  attention captioner on them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "CAPTION_COLOURS",
    "MOTION_CLASSES",
    "make_motion_caption_videos",
    "make_motion_videos",
    "motion_frames",
    "train_motion_classifier",
    "train_shapes_captioner",
    "write_video",
]

#: Class name -> (row, column) direction of motion of the square.
MOTION_CLASSES: dict[str, tuple[int, int]] = {
    "MoveLeft": (0, -1),
    "MoveRight": (0, 1),
    "MoveUp": (-1, 0),
    "MoveDown": (1, 0),
}

#: Colour name -> RGB of the captioned squares of :func:`make_motion_caption_videos`.
CAPTION_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
}
_CAPTION_TEMPLATES = (
    "a {colour} square moves {direction}.",
    "the {colour} square is moving {direction}.",
    "a {colour} block goes {direction}.",
)

# Codec -> pixel format it can encode from RGB. yuv444p lets libx264 take odd frame sizes.
_PIX_FMT = {"mpeg4": "yuv420p", "libx264": "yuv444p", "mjpeg": "yuvj420p", "mpeg2video": "yuv420p"}

# FFmpeg's FF_QP2LAMBDA: global_quality is a quantiser in lambda units.
_QP2LAMBDA = 118


def motion_frames(
    direction: tuple[int, int] | str,
    num_frames: int = 12,
    size: int = 32,
    *,
    rng: random.Random | None = None,
    colour: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """One clip of a coloured square crossing a plain background in ``direction``.

    The square's side (a fifth to a third of the frame), its colour, the background grey, its position
    across the direction of motion and the start and end of its path all vary with ``rng``, so a
    classifier has to follow the motion rather than memorise a picture.

    Args:
        direction: ``(drow, dcol)`` unit step, e.g. ``(0, 1)`` for rightwards, or a name of
            :data:`MOTION_CLASSES`.
        num_frames: T.
        size: Frame height and width (even, for the video encoder).
        rng: Random source; ``random.Random(0)`` when None.
        colour: RGB of the square; None: a random light colour.

    Returns:
        ``(T, size, size, 3)`` uint8 RGB frames.
    """
    if isinstance(direction, str):
        direction = MOTION_CLASSES[direction]
    drow, dcol = direction
    if (abs(drow), abs(dcol)) not in ((0, 1), (1, 0)):
        raise ValueError(f"direction must be one unit step along one axis, got {direction}")
    rng = rng or random.Random(0)
    side = rng.randint(max(2, size // 5), max(2, size // 3))
    travel = size - side
    start = rng.randint(0, travel // 4)
    end = travel - rng.randint(0, travel // 4)
    along = np.linspace(start, end, num_frames).round().astype(int)
    if drow + dcol < 0:  # leftwards / upwards
        along = travel - along
    across = rng.randint(0, travel)
    grey = rng.randint(20, 90)
    rgb = colour if colour is not None else [rng.randint(150, 255) for _ in range(3)]
    frames = np.full((num_frames, size, size, 3), grey, dtype=np.uint8)
    for frame, position in zip(frames, along, strict=True):
        row, col = (position, across) if drow else (across, position)
        frame[row : row + side, col : col + side] = np.array(rgb, dtype=np.uint8)
    return frames


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float = 25,
    codec: str = "mpeg4",
    *,
    rotation: int | None = None,
    keyframe_interval: int | None = None,
    quality: int | None = 2,
    bit_rate: int | None = None,
) -> Path:
    """Encode ``(T, H, W, 3)`` uint8 RGB frames into ``path`` (container from the suffix) with PyAV.

    Args:
        path: Output file (``.avi``, ``.mp4``, ``.mkv``, ...); parent folders are created.
        frames: The frames; H and W must be even for ``yuv420p`` codecs (``libx264`` is encoded as
            ``yuv444p``, which takes odd sizes).
        fps: Frame rate.
        codec: Any PyAV encoder, e.g. ``"mpeg4"`` (Xvid-like, as UCF101/HMDB51 ship; the default) or
            ``"libx264"``.
        rotation: Display-matrix rotation in degrees counter-clockwise (what phones write), if any.
        keyframe_interval: GOP size; ``None`` keeps the encoder's default.
        quality: Fixed quantiser for ``mpeg4``/``mjpeg`` (lower is better), so small clips' colours
            survive coding; ``None`` uses a bit rate instead.
        bit_rate: Target bits per second when no fixed quantiser is used; ``None``: the encoder's default.

    Returns:
        The path written.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames, dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = _PIX_FMT.get(codec, "yuv420p")
        if keyframe_interval is not None:
            stream.codec_context.gop_size = keyframe_interval
        if quality is not None and codec in ("mpeg4", "mjpeg"):
            stream.codec_context.qscale = True  # fixed quantiser instead of the 200 kb/s default
            stream.codec_context.global_quality = quality * _QP2LAMBDA
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_motion_videos(
    root: str | Path,
    classes: Sequence[str] = tuple(MOTION_CLASSES),
    groups: int = 5,
    clips_per_group: int = 3,
    test_groups: Sequence[int] = (1,),
    *,
    num_frames: int = 12,
    size: int = 32,
    fps: float = 25,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write a UCF101-layout dataset of moving-square clips under ``root``.

    Layout, as UCF101 ships: ``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` (mpeg4 in AVI) and
    ``ucfTrainTestlist/`` with ``classInd.txt`` (``index name``, 1-based), ``trainlist01.txt``
    (``path label``) and ``testlist01.txt`` (paths only). Groups listed in ``test_groups`` are the test
    split, the others the training split (clips of one group never straddle the two, as in UCF101).

    Args:
        root: Output folder (created).
        classes: Class names, each a key of :data:`MOTION_CLASSES`.
        groups: Groups per class (``gXX``).
        clips_per_group: Clips per group (``cYY``).
        test_groups: Group numbers (1-based) of the test split.
        num_frames: Frames per clip.
        size: Frame height and width in pixels (even).
        fps: Frame rate of the clips.
        seed: Seed of the clips' random sizes, colours and positions.

    Returns:
        ``(videos_root, annotations_dir)``: the values of ``data.videos`` and ``data.annotations``.
    """
    unknown = [name for name in classes if name not in MOTION_CLASSES]
    if unknown:
        raise ValueError(f"unknown motion classes {unknown}; choose from {list(MOTION_CLASSES)}")
    if size % 2:
        raise ValueError(f"size must be even for the video encoder, got {size}")
    root = Path(root)
    videos, annotations = root / "UCF-101", root / "ucfTrainTestlist"
    annotations.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    train, test = [], []
    for label, name in enumerate(classes, start=1):
        for g in range(1, groups + 1):
            for c in range(1, clips_per_group + 1):
                rel = f"{name}/v_{name}_g{g:02d}_c{c:02d}.avi"
                write_video(videos / rel, motion_frames(name, num_frames, size, rng=rng), fps)
                (test.append(rel) if g in test_groups else train.append(f"{rel} {label}"))
    for file_name, lines in (
        ("classInd.txt", [f"{i} {name}" for i, name in enumerate(classes, start=1)]),
        ("trainlist01.txt", train),
        ("testlist01.txt", test),
    ):
        (annotations / file_name).write_text("".join(f"{line}\n" for line in lines))
    return videos, annotations


def make_motion_caption_videos(
    root: str | Path,
    clips_per_pair: Sequence[int] = (5, 1, 2),
    *,
    num_frames: int = 12,
    size: int = 32,
    fps: float = 25,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write an MSR-VTT-layout video-captioning dataset of moving squares under ``root``.

    Every colour of :data:`CAPTION_COLOURS` moves in every direction of :data:`MOTION_CLASSES`; a clip's
    three reference captions name both (``a red square moves left.``), so a model must read the
    frames' content for the colour and their order for the direction. Layout: ``videos/<video_id>.mp4``
    and one ``videodatainfo.json`` holding the three splits (``train`` / ``validate`` / ``test``).

    Args:
        root: Output folder (created).
        clips_per_pair: Clips of each colour and direction in the train, validate and test splits.
        num_frames: Frames per clip.
        size: Frame height and width in pixels (even).
        fps: Frame rate of the clips.
        seed: Seed of the squares' sizes, shades and paths.

    Returns:
        ``(videos, annotations)``: the values of ``data.videos`` and ``data.annotations``.
    """
    import json

    if size % 2:
        raise ValueError(f"size must be even for the video encoder, got {size}")
    root = Path(root)
    rng = random.Random(seed)
    videos, sentences = [], []
    for split, count in zip(("train", "validate", "test"), clips_per_pair, strict=True):
        for n in range(count):
            for colour, rgb in CAPTION_COLOURS.items():
                for name, step in MOTION_CLASSES.items():
                    direction = name.removeprefix("Move").lower()
                    key = f"{split}_{colour}_{direction}_{n}"
                    shade = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in rgb)
                    frames = motion_frames(step, num_frames, size, rng=rng, colour=shade)
                    write_video(root / "videos" / f"{key}.mp4", frames, fps)
                    videos.append({"video_id": key, "split": split})
                    sentences += [
                        {"video_id": key, "caption": t.format(colour=colour, direction=direction)}
                        for t in _CAPTION_TEMPLATES
                    ]
    annotations = root / "videodatainfo.json"
    annotations.write_text(json.dumps({"videos": videos, "sentences": sentences}))
    return root / "videos", annotations


def train_motion_classifier(
    root: str | Path,
    classes: Sequence[str] = tuple(MOTION_CLASSES),
    groups: int = 6,
    clips_per_group: int = 3,
    test_groups: Sequence[int] = (1, 2),
    *,
    num_frames: int = 12,
    size: int = 32,
    overrides: Sequence[str] = (),
    progress: bool = False,
) -> Path:
    """Generate :func:`make_motion_videos` under ``root/data`` and train a small LSTM clip classifier.

    The model is a random-init ResNet-18 on ``size`` x ``size`` frames (features cached once) and a
    64-unit LSTM over all ``num_frames`` frames of a clip, so streaming a clip frame by frame ends with
    the clip's prediction. On a 2-core CPU it trains in about ten seconds.

    Args:
        root: Working folder: ``data/``, ``cache/`` and the run (``run/best.pt``) are written there.
        classes: Class names (keys of :data:`MOTION_CLASSES`).
        groups: Groups per class.
        clips_per_group: Clips per group.
        test_groups: Groups of the test split (validation is carved out of the training groups).
        num_frames: Frames per generated video (all of them are cached).
        size: Frame size in pixels.
        overrides: Extra ``key=value`` config overrides (e.g. ``train.epochs=30``).
        progress: Show progress bars and per-epoch lines.

    Returns:
        The path of the best checkpoint.
    """
    from vision2seq.config import load_config
    from vision2seq.train import train

    root = Path(root)
    videos, annotations = make_motion_videos(
        root / "data", classes, groups, clips_per_group, test_groups, num_frames=num_frames, size=size
    )
    config = load_config(
        None,
        [
            "task=video_classification",
            f"output_dir={root / 'run'}",
            f"data.videos={videos}",
            f"data.annotations={annotations}",
            f"data.cache_dir={root / 'cache'}",
            f"data.num_frames={num_frames}",
            f"data.cache_frames={num_frames}",
            "model.encoder.name=resnet18",
            "model.encoder.weights=null",
            f"model.encoder.image_size={size}",
            "model.temporal.hidden_dim=64",
            "model.temporal.dropout=0.0",
            "train.epochs=30",
            "train.batch_size=8",
            "train.lr=0.003",
            "train.num_workers=0",
            "train.device=cpu",
            *overrides,
        ],
    )
    train(config, progress=progress)
    return Path(config.output_dir) / "best.pt"


def train_shapes_captioner(
    root: str | Path,
    n_train: int = 400,
    n_val: int = 50,
    n_test: int = 50,
    overrides: Sequence[str] = (),
    progress: bool = False,
) -> Path:
    """Generate a small ``vision2seq demo`` shapes dataset under ``root/data`` and train its captioner.

    Uses ``configs/demo.yaml`` (random-init ResNet-18 3x3 grid, attention decoder) with fewer images and
    epochs, a smaller LSTM (128 units) and no attention regulariser (``alpha_c`` 0, so the attention
    maps are worth drawing) than ``vision2seq demo``: on a 2-core CPU it trains in about twenty seconds
    (test BLEU-4 about 0.75; it gets the side of the shape right, the colour mostly, the shape rarely).

    Args:
        root: Working folder: ``data/``, ``cache/`` and the run (``run/best.pt``) are written there.
        n_train: Training images.
        n_val: Validation images.
        n_test: Test images.
        overrides: Extra ``key=value`` config overrides (e.g. ``train.epochs=12``).
        progress: Show progress bars and per-epoch lines.

    Returns:
        The path of the best checkpoint.
    """
    from vision2seq.config import load_config
    from vision2seq.demo import demo_config_path, make_shapes_dataset
    from vision2seq.train import train

    root = Path(root)
    annotations = make_shapes_dataset(root / "data", n_train, n_val, n_test)
    config = load_config(
        demo_config_path(),
        [
            f"data.annotations={annotations}",
            f"data.images={root / 'data' / 'images'}",
            f"data.cache_dir={root / 'cache'}",
            f"output_dir={root / 'run'}",
            "model.decoder.hidden_dim=128",
            # No doubly stochastic regulariser: with 3x3 grid cells and captions of about 12 tokens,
            # asking each cell's attention to total 1 over the caption keeps every map nearly uniform.
            "model.decoder.alpha_c=0.0",
            "train.batch_size=32",
            "train.epochs=6",
            "train.num_workers=0",
            "train.device=cpu",
            *overrides,
        ],
    )
    train(config, progress=progress)
    return Path(config.output_dir) / "best.pt"
