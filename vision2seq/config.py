"""Typed experiment configs: YAML files plus dotted ``key=value`` overrides; a typo stops the run.

A config file names its ``task``; the task picks the schema (``CaptioningConfig`` or ``VideoConfig``).
Every field below is a key users may set, with its default; the docstring under a field explains it.
Unknown keys and values of the wrong type raise ``ConfigError`` naming the key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vision2seq.errors import UserError
from vision2seq.yamlfiles import YamlRefused, parse_yaml, read_yaml


class ConfigError(UserError):
    """An unknown key, a value of the wrong type, or an unreadable config file."""


# --------------------------------------------------------------------------------------------------
# Sections shared by both tasks


@dataclass
class EncoderConfig:
    name: str = "resnet50"
    """A torchvision classification backbone (``torchvision.models.list_models()``): resnet18..152,
    mobilenet_v3_large, efficientnet_b0, convnext_tiny, regnet_y_800mf, ...; or ``timm:NAME`` for a
    timm backbone (the ``timm`` extra): ``timm:tf_efficientnet_lite0``, ``timm:vit_small_patch16_224``."""
    weights: str | None = "DEFAULT"
    """A torchvision weights name (``DEFAULT``, ``IMAGENET1K_V2``, ...) or, for ``timm:`` names,
    ``DEFAULT`` / a pretrained tag (``in1k``); a path to a local state-dict file in the library's key
    naming (loaded only if its keys match the network's exactly); or null for random initialisation."""
    output: Literal["pooled", "grid"] = "pooled"
    """``pooled``: one vector per image; ``grid``: the spatial feature map, for attention decoders."""
    trainable_from: str | None = None
    """null keeps the encoder frozen (features are cached); a stage name (``layer4`` for ResNets, an
    index such as ``6`` for ``features``-style backbones) or ``all`` fine-tunes from that stage onward;
    ``auto`` freezes pretrained weights and trains a random-init encoder whole (``trainable()``)."""
    lr: float | None = None
    """Learning rate of the trained encoder stages; null: ``train.lr`` for an encoder learning from random
    init, 1e-5 for fine-tuning pretrained weights (``learning_rate()``)."""
    image_size: int | None = None
    """Input size in pixels; null uses the weights' own preprocessing (224 for most)."""
    resize: Literal["squash", "pad", "crop"] = "squash"
    """How a non-square image becomes square: ``squash`` resizes the whole image (the captioning
    convention: nothing is cut off), ``pad`` keeps its aspect ratio inside black bars, ``crop`` resizes
    the short side and cuts the centre out (the weights' ImageNet preprocessing)."""

    def trainable(self) -> str | None:
        """``trainable_from`` with ``auto`` resolved.

        A frozen random CNN is a fixed random projection: on generated scenes of one or two shapes a
        captioner reading its features named colour and shape right in about a fifth of held-out images,
        one training the same CNN with it in well over half. So ``auto`` trains a random-init encoder
        and keeps pretrained weights frozen (their features already carry the picture, and are cached).
        """
        if self.trainable_from == "auto":
            return "all" if self.weights is None else None
        return self.trainable_from

    def learning_rate(self, train_lr: float) -> float:
        """The encoder's learning rate: ``lr``, or when null the decoder's for an encoder learning from
        scratch and a fine-tuning rate for pretrained weights (large steps would erase what they know)."""
        if self.lr is not None:
            return self.lr
        return train_lr if self.weights is None else 1.0e-5


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 4.0e-4
    weight_decay: float = 0.0
    momentum: float = 0.9
    """SGD momentum (ignored by Adam/AdamW)."""
    scheduler: Literal["none", "cosine", "step", "plateau"] = "none"
    """Learning-rate schedule: ``cosine`` over all steps, ``step`` (×``lr_gamma`` every
    ``lr_step_epochs``), ``plateau`` (×``lr_gamma`` when the monitored metric stalls)."""
    warmup_steps: int = 0
    """Linear warm-up steps; clamped (with a warning) to a tenth of the run's total steps."""
    warmup_fraction: float = 0.0
    """Warm-up as a fraction of the run's total optimiser steps (fits short and long runs alike); when
    above 0 it replaces ``warmup_steps``."""
    lr_step_epochs: int = 5
    lr_gamma: float = 0.5
    grad_clip: float | None = 5.0
    """Clip the gradient norm to this value; null (or 0) disables clipping."""
    amp: Literal["none", "bf16", "fp16"] = "none"
    """Mixed precision on CUDA (ignored on the CPU)."""
    early_stopping_patience: int = 0
    """Stop after this many epochs without improvement of the monitored metric; 0 disables."""
    monitor: str | None = None
    """Metric that selects ``best.pt``; null uses the task's default (``bleu_4`` / ``top1``)."""
    val_every: int = 1
    """Validate every this many epochs."""
    num_workers: int = 2
    """DataLoader worker processes (image/video decoding happens in the workers)."""
    pin_memory: bool | None = None
    """Page-locked batches for faster host-to-GPU copies; null: on when training on CUDA."""
    persistent_workers: bool | None = None
    """Keep loader workers alive between epochs; null: on, except for loaders whose items depend on the
    epoch (randomly sampled video frames decoded in the workers)."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, ..."""
    threads: int | None = None
    """CPU threads of torch (``--threads``); null: the CPUs left after loader workers, other load and one
    spare core (see ``vision2seq.resources``)."""
    resume: bool = False
    """Resume from ``output_dir/last.pt`` (same as ``vision2seq train --resume``)."""
    overwrite: bool = False
    """Delete another run's files in ``output_dir`` (best.pt, last.pt, metrics.csv, tensorboard/) and start
    afresh; without it (or ``resume``) a folder holding a run is refused."""
    skip_nonfinite: bool = False
    """Skip a batch whose loss is NaN/inf (reported on stderr) instead of stopping the run."""
    checkpoint_every: int = 0
    """Also write ``last.pt`` every this many optimiser steps (resume mid-epoch); 0: at epoch ends only."""
    max_steps: int | None = None
    """Stop after this many optimiser steps in total (for smoke tests); null runs all epochs."""
    init_from: str | None = None
    """Start from the weights of this checkpoint (same task, same vocabulary or classes); unlike a resume
    the optimiser, schedule and epoch count start afresh (e.g. SCST after cross-entropy). Ignored when
    resuming."""
    objective: Literal["xent", "scst"] = "xent"
    """Captioning only: ``xent`` (teacher-forced cross-entropy) or ``scst`` (self-critical sequence
    training with a CIDEr-D reward; start it from a cross-entropy checkpoint with ``init_from``)."""
    scst_baseline: Literal["greedy", "mean"] = "greedy"
    """SCST: the reward baseline, the greedy caption's reward (Rennie et al., 2017) or the mean reward of
    the other samples of the image (needs ``scst_samples`` >= 2)."""
    scst_samples: int = 5
    """SCST: captions sampled per image at each step."""


@dataclass
class GenerationConfig:
    strategy: Literal["greedy", "beam", "sample"] = "beam"
    """``greedy``, batched ``beam`` search, or ``sample`` (with ``temperature`` and ``top_k``)."""
    beam_size: int = 3
    max_len: int = 20
    """Maximum caption length in tokens (without ``<bos>``/``<eos>``)."""
    length_penalty: float = 0.0
    """Beam-search length normalisation exponent (GNMT: score / ((5 + len) / 6) ** alpha); 0 ranks by total
    log-probability."""
    temperature: float = 1.0
    """Sampling only: divides the logits (below 1: more conservative)."""
    top_k: int = 0
    """Sampling only: draw from the k most likely words (0: all)."""


# --------------------------------------------------------------------------------------------------
# Captioning


@dataclass
class CaptionDataConfig:
    annotations: str = ""
    """Dataset JSON: a Karpathy split file (``dataset_flickr8k.json``, ``dataset_coco.json``) or a COCO
    captions file (``captions_train2014.json``)."""
    images: str = ""
    """Root folder of the images; Karpathy ``filepath`` (if any) and ``filename`` are joined under it."""
    val_annotations: str | None = None
    """COCO format only: the validation captions file (COCO files hold a single split each)."""
    val_images: str | None = None
    """COCO format only: the validation image folder (default: ``images``)."""
    train_splits: list[str] = field(default_factory=lambda: ["train", "restval"])
    val_split: str = "val"
    test_split: str = "test"
    min_word_freq: int = 5
    """Words seen fewer times in the training captions map to ``<unk>``."""
    max_caption_len: int = 30
    """Training captions are truncated to this many tokens."""
    cache_features: bool = True
    """Cache a frozen encoder's features on disk (read row by row) so epochs never re-run the CNN."""
    cache_dir: str | None = None
    """Feature-cache folder; null uses ``$VISION2SEQ_CACHE`` or ``~/.cache/vision2seq``."""
    max_val_images: int | None = None
    """Score only the first N validation images each epoch (faster validation); null scores all."""
    skip_missing: bool = False
    """Skip referenced images that do not exist instead of stopping with an error."""


@dataclass
class CaptionDecoderConfig:
    kind: Literal["show_tell", "attention"] = "show_tell"
    """``show_tell`` (image feature conditions the LSTM) or ``attention`` (Show, Attend and Tell; needs
    ``model.encoder.output: grid``)."""
    embed_dim: int = 256
    hidden_dim: int = 512
    attention_dim: int = 256
    num_layers: int = 1
    dropout: float = 0.3
    conditioning: Literal["init", "pre", "merge"] = "merge"
    """Show and Tell only: where the image enters the LSTM, ``init`` (its initial state), ``pre`` (the
    first input, as in the paper) or ``merge`` (concatenated with the LSTM output)."""
    alpha_c: float = 1.0
    """Weight of the doubly stochastic attention regulariser (attention decoder only)."""


@dataclass
class CaptionModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: CaptionDecoderConfig = field(default_factory=CaptionDecoderConfig)
    feature_norm: Literal["dataset", "none"] = "dataset"
    """``dataset``: standardise each feature dimension with the training set's mean and std (stored in
    the checkpoint); ``none``: the decoder reads raw encoder features."""


@dataclass
class CaptioningConfig:
    task: Literal["captioning"] = "captioning"
    output_dir: str = "runs/captioning"
    seed: int = 0
    data: CaptionDataConfig = field(default_factory=CaptionDataConfig)
    model: CaptionModelConfig = field(default_factory=CaptionModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)


# --------------------------------------------------------------------------------------------------
# Video classification


@dataclass
class VideoDataConfig:
    videos: str = ""
    """Root of the class folders (``<Class>/<clip>.avi``) or frame folders."""
    annotations: str | None = None
    """Split-list folder (UCF101 ``classInd.txt``/``trainlist01.txt``, HMDB51 ``*_test_split1.txt``) or a
    CSV ``path,label`` list; null means one folder per class with a seeded train/val split."""
    format: Literal["auto", "ucf101", "hmdb51", "folders", "csv"] = "auto"
    split: int = 1
    """Official split number (1-3) for UCF101/HMDB51."""
    val_annotations: str | None = None
    """CSV format only: the validation list (default: the CSV's ``split`` column, else a seeded split)."""
    val_fraction: float = 0.2
    """Share of the training list carved out (seeded, group-aware) as the validation split when the
    layout has none of its own (UCF101/HMDB51 train lists, class folders, CSV without a split)."""
    num_frames: int = 8
    """Frames per clip (T)."""
    sampling: Literal["segment", "dense"] = "segment"
    """``segment``: TSN-style, random within T segments when training, their centres when evaluating;
    ``dense``: T consecutive frames every ``frame_stride``."""
    frame_stride: int = 2
    test_clips: int = 1
    """Clips per video at evaluation time; their softmax scores are averaged (video-level accuracy)."""
    cache_features: bool = True
    """Cache a frozen encoder's per-frame features on disk so epochs never decode video."""
    cache_frames: int = 32
    """About this many frames per video in the feature cache: whole clips (as ``classify`` samples them)
    at evenly spread positions, so evaluation reads exactly its clips and training draws among them."""
    cache_dir: str | None = None
    skip_missing: bool = False
    """Skip listed videos that do not exist instead of stopping with an error."""


@dataclass
class TemporalConfig:
    kind: Literal["lstm", "mean"] = "lstm"
    """``lstm`` over frame features, or ``mean``: the no-LSTM baseline (mean of frames -> linear)."""
    hidden_dim: int = 512
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.5
    pooling: Literal["last", "mean", "attention"] = "last"
    """How LSTM states become one clip vector: the last state, their mean over time, or attention."""


@dataclass
class VideoModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    feature_norm: Literal["dataset", "none"] = "dataset"
    """``dataset``: standardise each frame-feature dimension with the training set's mean and std
    (stored in the checkpoint); ``none``: the classifier reads raw encoder features."""


@dataclass
class VideoConfig:
    task: Literal["video_classification"] = "video_classification"
    output_dir: str = "runs/video"
    seed: int = 0
    data: VideoDataConfig = field(default_factory=VideoDataConfig)
    model: VideoModelConfig = field(default_factory=VideoModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------------------------------
# Video captioning


@dataclass
class VideoCaptionDataConfig:
    videos: str = ""
    """Folder of the clips: MSR-VTT ``<video_id>.mp4``, MSVD ``<clip>.avi`` (or a frame folder named like
    the clip, without suffix)."""
    annotations: str = ""
    """MSR-VTT: ``train_val_videodatainfo.json`` (or one file holding all three splits); MSVD:
    ``AllVideoDescriptions.txt``."""
    format: Literal["auto", "msrvtt", "msvd"] = "auto"
    """``auto``: a ``.json`` file is MSR-VTT, a text file MSVD."""
    test_annotations: str | None = None
    """MSR-VTT only: a second file whose videos join those of ``annotations`` (the official
    ``test_videodatainfo.json``); every video keeps the ``split`` it names."""
    mapping: str | None = None
    """MSVD only: the id mapping file (``youtube_mapping.txt``: ``<clip> vid<N>`` lines) whose ids, in
    order, define the split."""
    msvd_split: list[int] = field(default_factory=lambda: [1200, 100, 670])
    """MSVD only: how many clips of the mapping file, in ``vid<N>`` order, are train, val and test."""
    train_splits: list[str] = field(default_factory=lambda: ["train"])
    """Splits trained on (``train``, ``val``, ``test``; MSR-VTT's ``validate`` is ``val``)."""
    val_split: str = "val"
    """The split validated on during training (``evaluate --split`` picks any)."""
    min_word_freq: int = 2
    """Words seen fewer times in the training captions map to ``<unk>``."""
    max_caption_len: int = 30
    """Training captions are truncated to this many tokens."""
    max_val_videos: int | None = None
    """Score only the first N validation clips each epoch (faster validation); null scores all."""
    num_frames: int = 16
    """Frames per clip (T) the temporal encoder reads."""
    sampling: Literal["segment", "dense"] = "segment"
    """As for video classification: ``segment`` (TSN; random within T segments when training, their
    centres otherwise) or ``dense`` (T consecutive frames every ``frame_stride``)."""
    frame_stride: int = 2
    cache_features: bool = True
    """Cache a frozen encoder's per-frame features on disk (shared with video classification)."""
    cache_frames: int = 32
    """Frames per video in the feature cache, spread evenly; clips are sampled from these."""
    cache_dir: str | None = None
    """Feature-cache folder; null uses ``$VISION2SEQ_CACHE`` or ``~/.cache/vision2seq``."""
    skip_missing: bool = False
    """Skip listed clips that do not exist (reported once) instead of stopping with an error."""


@dataclass
class VideoCaptionTemporalConfig:
    kind: Literal["lstm", "mean"] = "lstm"
    """``lstm``: an order-aware LSTM over the frame features, attended over time by the decoder;
    ``mean``: the order-blind baseline (the mean frame feature is the decoder's only memory)."""
    hidden_dim: int = 512
    """LSTM hidden size per direction."""
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    """Dropout on the frame features and between LSTM layers."""


@dataclass
class VideoCaptionDecoderConfig:
    embed_dim: int = 256
    hidden_dim: int = 512
    attention_dim: int = 256
    num_layers: int = 1
    dropout: float = 0.3
    alpha_c: float = 0.0
    """Weight of the doubly stochastic attention regulariser (every frame attended about once)."""


@dataclass
class VideoCaptionModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """The per-frame CNN; its output is always pooled (one vector per frame)."""
    temporal: VideoCaptionTemporalConfig = field(default_factory=VideoCaptionTemporalConfig)
    decoder: VideoCaptionDecoderConfig = field(default_factory=VideoCaptionDecoderConfig)
    """The attention decoder of image captioning, attending over the encoded frames."""


@dataclass
class VideoCaptioningConfig:
    task: Literal["video_captioning"] = "video_captioning"
    output_dir: str = "runs/video_captioning"
    seed: int = 0
    data: VideoCaptionDataConfig = field(default_factory=VideoCaptionDataConfig)
    model: VideoCaptionModelConfig = field(default_factory=VideoCaptionModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)


ExperimentConfig = CaptioningConfig | VideoConfig | VideoCaptioningConfig
SCHEMAS: dict[str, type] = {
    "captioning": CaptioningConfig,
    "video_classification": VideoConfig,
    "video_captioning": VideoCaptioningConfig,
}


# --------------------------------------------------------------------------------------------------
# Ranges of the numeric keys, checked when a config is read (the message gives the range)


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric key: ``low <= v`` (``low < v`` when ``low_open``), likewise ``high``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""
    """Appended to the message, e.g. how to switch the feature off."""

    def check(self, value: float, key: str, source: str) -> None:
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.high_open else value <= self.high)
        if not (low_ok and high_ok):
            note = f" ({self.note})" if self.note else ""
            raise ConfigError(f"{source}: key '{key}' must be {self.describe()}{note}, got {_short(value)}")

    def describe(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {_number(self.high)}"
        return (
            f"in {'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}"
            f"{')' if self.high_open else ']'}"
        )


def _number(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)


POSITIVE_INT, COUNT, POSITIVE, NON_NEGATIVE = Range(1), Range(0), Range(0, low_open=True), Range(0)
FRACTION = Range(0, 1, high_open=True)
"""A probability such as dropout: 0 up to, not including, 1."""

DECODER_RANGES: dict[str, Range] = {
    "embed_dim": POSITIVE_INT,
    "hidden_dim": POSITIVE_INT,
    "attention_dim": POSITIVE_INT,
    "num_layers": POSITIVE_INT,
    "dropout": FRACTION,
    "alpha_c": NON_NEGATIVE,
}
"""The caption decoders' numeric keys, the same for images and for clips."""

RANGES: dict[type, dict[str, Range]] = {
    EncoderConfig: {"lr": NON_NEGATIVE, "image_size": POSITIVE_INT},
    TrainConfig: {
        "epochs": POSITIVE_INT,
        "batch_size": POSITIVE_INT,
        "lr": POSITIVE,
        "weight_decay": NON_NEGATIVE,
        "momentum": Range(0, 1),
        "warmup_steps": COUNT,
        "warmup_fraction": Range(0, 1, high_open=True),
        "scst_samples": POSITIVE_INT,
        "lr_step_epochs": POSITIVE_INT,
        "lr_gamma": Range(0, 1, low_open=True),
        "grad_clip": Range(0, note="0 or null disables clipping"),
        "early_stopping_patience": COUNT,
        "val_every": POSITIVE_INT,
        "num_workers": COUNT,
        "threads": POSITIVE_INT,
        "checkpoint_every": COUNT,
        "max_steps": POSITIVE_INT,
    },
    GenerationConfig: {
        "beam_size": POSITIVE_INT,
        "max_len": POSITIVE_INT,
        "length_penalty": NON_NEGATIVE,
        "temperature": POSITIVE,
        "top_k": COUNT,
    },
    CaptionDataConfig: {
        "min_word_freq": POSITIVE_INT,
        "max_caption_len": POSITIVE_INT,
        "max_val_images": POSITIVE_INT,
    },
    CaptionDecoderConfig: DECODER_RANGES,
    CaptioningConfig: {"seed": Range(0, 2**32 - 1)},  # NumPy's seed range
    VideoDataConfig: {
        "split": Range(1, 3),
        "val_fraction": Range(0, 1, low_open=True, high_open=True),
        "num_frames": POSITIVE_INT,
        "frame_stride": POSITIVE_INT,
        "test_clips": POSITIVE_INT,
        "cache_frames": POSITIVE_INT,
    },
    TemporalConfig: {"hidden_dim": POSITIVE_INT, "num_layers": POSITIVE_INT, "dropout": FRACTION},
    VideoConfig: {"seed": Range(0, 2**32 - 1)},
    VideoCaptionDataConfig: {
        "msvd_split": COUNT,
        "min_word_freq": POSITIVE_INT,
        "max_caption_len": POSITIVE_INT,
        "max_val_videos": POSITIVE_INT,
        "num_frames": POSITIVE_INT,
        "frame_stride": POSITIVE_INT,
        "cache_frames": POSITIVE_INT,
    },
    VideoCaptionTemporalConfig: {"hidden_dim": POSITIVE_INT, "num_layers": POSITIVE_INT, "dropout": FRACTION},
    VideoCaptionDecoderConfig: DECODER_RANGES,
    VideoCaptioningConfig: {"seed": Range(0, 2**32 - 1)},
}
"""Every int/float key of every schema (``tests/test_config.py`` checks that none is missing)."""


def check_consistency(config: ExperimentConfig, source: str = "config") -> None:
    """Refuse settings that contradict each other, naming the fix (``load_config`` runs this; configs
    stored in checkpoints are not re-judged by rules newer than they are).

    Raises:
        ConfigError: an attention decoder over pooled features (one position to attend to),
            ``train.resume`` together with ``train.overwrite``, SCST for a classifier, or SCST's mean
            baseline with fewer than two samples.
    """
    model = config.model
    if (
        isinstance(model, CaptionModelConfig)
        and model.decoder.kind == "attention"
        and model.encoder.output != "grid"
    ):
        raise ConfigError(
            f"{source}: model.decoder.kind 'attention' needs model.encoder.output 'grid' (pooled "
            "features leave one position to attend to); set model.encoder.output=grid, or "
            "model.decoder.kind=show_tell"
        )
    if config.train.resume and config.train.overwrite:
        raise ConfigError(
            f"{source}: train.resume and train.overwrite contradict each other (continue the run in "
            "output_dir, or delete it); set one of them to false"
        )
    t = config.train
    if t.objective == "scst" and isinstance(config, VideoConfig):
        raise ConfigError(
            f"{source}: train.objective 'scst' trains captioners (a CIDEr-D reward); video "
            "classification trains with train.objective=xent"
        )
    if t.objective == "scst" and t.scst_baseline == "mean" and t.scst_samples < 2:
        raise ConfigError(
            f"{source}: train.scst_baseline 'mean' averages the other samples of an image, so it needs "
            f"train.scst_samples >= 2 (got {t.scst_samples}); raise it, or use train.scst_baseline=greedy"
        )


# --------------------------------------------------------------------------------------------------
# Loading, overriding, checking


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read a YAML experiment file, apply ``key=value`` overrides and check every key and type.

    Args:
        path: YAML file, or None to start from the defaults (then ``task=...`` may be overridden).
        overrides: dotted assignments such as ``train.epochs=3``; values are parsed as YAML scalars.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = read_yaml(path)
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a folder, expected a YAML config file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config ({_one_line(exc)})") from None
        except YamlRefused as exc:
            raise ConfigError(f"{path}: {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML ({_one_line(exc)})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config must be a mapping of keys, got {type(loaded).__name__}")
        raw = loaded
    for item in overrides:
        apply_override(raw, item)
    config = config_from_dict(raw, source=str(path) if path else "config")
    # Only for experiments being set up: a checkpoint trained before a rule existed still loads.
    check_consistency(config, str(path) if path else "config")
    return config


def config_from_dict(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Build a checked config from a plain dict (as stored in checkpoints)."""
    task = raw.get("task", "captioning")
    if not isinstance(task, str) or task not in SCHEMAS:
        raise ConfigError(f"{source}: key 'task' must be one of {sorted(SCHEMAS)}, got {_short(task)}")
    return _build(SCHEMAS[task], raw, prefix="", source=source)


def with_overrides(
    config: ExperimentConfig, overrides: list[str] | tuple[str, ...], source: str = "config"
) -> ExperimentConfig:
    """A copy of ``config`` with dotted ``key=value`` overrides applied and checked."""
    raw = config_to_dict(config)
    for item in overrides:
        apply_override(raw, item)
    return config_from_dict(raw, source=source)


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """Plain nested dict of a config (YAML/JSON-safe)."""
    return dataclasses.asdict(config)


def dump_config(config: ExperimentConfig) -> str:
    """The config as YAML text."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set one dotted ``key=value`` override in a raw config dict (checked later by ``config_from_dict``)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected key=value, e.g. train.epochs=3")
    try:
        value = parse_yaml(text) if text.strip() else None
    except YamlRefused as exc:
        raise ConfigError(f"override {key!r}: {exc}") from None
    except yaml.YAMLError:
        value = text
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: key '{prefix.rstrip('.') or '<root>'}' must be a section (mapping)")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        key = prefix + str(unknown[0])
        raise ConfigError(f"{source}: unknown key '{key}' (valid keys here: {', '.join(sorted(names))})")
    kwargs = {}
    for name in names & set(raw):
        kwargs[name] = _check(hints[name], raw[name], prefix + name, source)
        bounds = RANGES.get(cls, {}).get(name)
        if bounds is not None and kwargs[name] is not None:
            for value in kwargs[name] if isinstance(kwargs[name], list) else [kwargs[name]]:
                bounds.check(value, prefix + name, source)
    return cls(**kwargs)


def _check(tp: Any, value: Any, key: str, source: str) -> Any:
    """Return ``value`` converted to type ``tp`` or raise ``ConfigError`` naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".", source)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check(arg, value, key, source)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{source}: key '{key}' must be one of {allowed}, got {_short(value)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: key '{key}' must be a list, got {_short(value)}")
        return [_check(args[0], v, key, source) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value) if abs(value) < 1e308 else math.inf  # float(10**400) would raise
        elif isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is not None:
            if not math.isfinite(number):
                raise ConfigError(f"{source}: key '{key}' must be a finite number, got {_short(value)}")
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. trainable_from: 6 (a stage index)
    else:  # pragma: no cover - a schema bug, not a user error
        raise TypeError(f"unsupported config type {tp!r} for {key}")
    raise ConfigError(f"{source}: key '{key}' must be {tp.__name__}, got {_short(value)}")


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxdict, _repr.maxstring, _repr.maxother = 2, 4, 4, 40, 40


def _short(value: Any) -> str:
    """A bounded repr: a value from an alias bomb is never formatted in full."""
    return " ".join(_repr.repr(value).split())
