"""Typed experiment configs: YAML files plus dotted ``key=value`` overrides; a typo stops the run.

A config file names its ``task``; the task picks the schema (``CaptioningConfig`` or ``VideoConfig``).
Every field below is a key users may set, with its default; the docstring under a field explains it.
Unknown keys and values of the wrong type raise ``ConfigError`` naming the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vision2seq.errors import UserError


class ConfigError(UserError):
    """An unknown key, a value of the wrong type, or an unreadable config file."""


# --------------------------------------------------------------------------------------------------
# Sections shared by both tasks


@dataclass
class EncoderConfig:
    name: str = "resnet50"
    """A torchvision classification backbone (``torchvision.models.list_models()``): resnet18..152,
    mobilenet_v3_large, efficientnet_b0, convnext_tiny, regnet_y_800mf, ..."""
    weights: str | None = "DEFAULT"
    """A torchvision weights name (``DEFAULT``, ``IMAGENET1K_V2``, ...), a path to a local state-dict
    file, or null for random initialisation."""
    output: Literal["pooled", "grid"] = "pooled"
    """``pooled``: one vector per image; ``grid``: the spatial feature map, for attention decoders."""
    trainable_from: str | None = None
    """null keeps the encoder frozen (features are cached); a stage name (``layer4`` for ResNets, an
    index such as ``6`` for ``features``-style backbones) or ``all`` fine-tunes from that stage onward."""
    lr: float = 1.0e-5
    """Learning rate of the fine-tuned encoder stages (the decoder uses ``train.lr``)."""
    image_size: int | None = None
    """Centre-crop size; null uses the weights' own preprocessing (224 for most)."""


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
    """Clip the gradient norm to this value; null disables clipping."""
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
    resume: bool = False
    """Resume from ``output_dir/last.pt`` (same as ``vision2seq train --resume``)."""
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
    """CSV format only: the validation list (default: a seeded split of ``annotations``)."""
    val_fraction: float = 0.2
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
    """Frames per video in the feature cache, spread evenly; clips are sampled from these."""
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


ExperimentConfig = CaptioningConfig | VideoConfig
SCHEMAS: dict[str, type] = {"captioning": CaptioningConfig, "video_classification": VideoConfig}


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
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config ({exc})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML ({_one_line(exc)})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config must be a mapping of keys, got {type(loaded).__name__}")
        raw = loaded
    for item in overrides:
        apply_override(raw, item)
    return config_from_dict(raw, source=str(path) if path else "config")


def config_from_dict(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Build a checked config from a plain dict (as stored in checkpoints)."""
    task = raw.get("task", "captioning")
    if task not in SCHEMAS:
        raise ConfigError(f"{source}: key 'task' must be one of {sorted(SCHEMAS)}, got {task!r}")
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
        value = yaml.safe_load(text) if text.strip() else None
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
            raise ConfigError(f"{source}: key '{key}' must be one of {allowed}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: key '{key}' must be a list, got {value!r}")
        return [_check(args[0], v, key, source) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. trainable_from: 6 (a stage index)
    else:  # pragma: no cover - a schema bug, not a user error
        raise TypeError(f"unsupported config type {tp!r} for {key}")
    raise ConfigError(f"{source}: key '{key}' must be {tp.__name__}, got {value!r}")


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
