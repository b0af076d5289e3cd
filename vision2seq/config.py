"""Typed experiment configs: YAML files plus dotted ``key=value`` overrides; a typo stops the run.

A config file names its ``task``; the task picks the schema (``CaptioningConfig``, ``VideoConfig`` or
``VideoCaptioningConfig``). Every field below is a key users may set, with its default; the docstring
under a field explains it, its annotation gives its type and range. The schemas are plain dataclasses
that pydantic validates (``vision2seq.config_loading``): unknown keys, values of the wrong type or out of
range, and settings that contradict each other raise a one-line ``ConfigError`` naming the key.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, Strict, ValidationInfo, model_validator

from vision2seq.config_loading import (
    RULES,
    Note,
    Range,
    Schema,
    contradiction,
    read_config_file,
    short,
    yaml_number,
)
from vision2seq.config_loading import ConfigError as ConfigError  # the config API is this module
from vision2seq.config_loading import apply_override as apply_override
from vision2seq.yamlfiles import KeyLines

# Ranges of the numeric keys: pydantic checks them, the error message states them.
PositiveInt = Annotated[int, Strict(), Field(ge=1)]
Count = Annotated[int, Strict(), Field(ge=0)]
Seed = Annotated[int, Strict(), Field(ge=0, le=2**32 - 1)]
"""NumPy's seed range."""
Number = Annotated[float, BeforeValidator(yaml_number)]
"""A finite float; YAML 1.1's ``1e-4`` (a string) and integers are read as floats."""
Positive = Annotated[Number, Field(gt=0)]
NonNegative = Annotated[Number, Field(ge=0)]
Fraction = Annotated[Number, Field(ge=0, lt=1)]
"""A probability such as dropout: 0 up to, not including, 1."""
UnitInterval = Annotated[Number, Field(ge=0, le=1)]
Factor = Annotated[Number, Field(gt=0, le=1)]
"""A multiplicative decay: above 0, at most 1."""
MAX_CAPTION_LEN, MAX_BEAM_SIZE = 1000, 100
"""Upper bounds of ``generation.max_len`` and ``generation.beam_size`` (also for ``caption --max-len``)."""


def _rules(info: ValidationInfo) -> bool:
    """Whether cross-field rules apply: to experiments being set up, not to configs stored in
    checkpoints (a checkpoint trained before a rule existed still loads)."""
    return bool(info.context and info.context.get(RULES))


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
    lr: NonNegative | None = None
    """Learning rate of the trained encoder stages; null: ``train.lr`` for an encoder learning from random
    init, 1e-5 for fine-tuning pretrained weights (``learning_rate()``)."""
    image_size: (
        Annotated[
            int,
            Strict(),
            Field(ge=16, le=4096),
            Note("pixels per side; null uses the weights' size, 224 for most"),
        ]
        | None
    ) = None
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
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: Positive = 4.0e-4
    weight_decay: NonNegative = 0.0
    momentum: UnitInterval = 0.9
    """SGD momentum (ignored by Adam/AdamW)."""
    scheduler: Literal["none", "cosine", "step", "plateau"] = "none"
    """Learning-rate schedule: ``cosine`` over all steps, ``step`` (×``lr_gamma`` every
    ``lr_step_epochs``), ``plateau`` (×``lr_gamma`` when the monitored metric stalls)."""
    warmup_steps: Count = 0
    """Linear warm-up steps; clamped (with a warning) to a tenth of the run's total steps."""
    warmup_fraction: Fraction = 0.0
    """Warm-up as a fraction of the run's total optimiser steps (fits short and long runs alike); when
    above 0 it replaces ``warmup_steps``."""
    lr_step_epochs: PositiveInt = 5
    lr_gamma: Factor = 0.5
    grad_clip: Annotated[NonNegative, Note("0 or null disables clipping")] | None = 5.0
    """Clip the gradient norm to this value; null (or 0) disables clipping."""
    amp: Literal["none", "bf16", "fp16"] = "none"
    """Mixed precision on CUDA (ignored on the CPU)."""
    early_stopping_patience: Count = 0
    """Stop after this many epochs without improvement of the monitored metric; 0 disables."""
    monitor: str | None = None
    """Metric that selects ``best.pt``; null uses the task's default (``bleu_4`` / ``top1``)."""
    val_every: PositiveInt = 1
    """Validate every this many epochs."""
    num_workers: Count = 2
    """DataLoader worker processes (image/video decoding happens in the workers)."""
    pin_memory: bool | None = None
    """Page-locked batches for faster host-to-GPU copies; null: on when training on CUDA."""
    persistent_workers: bool | None = None
    """Keep loader workers alive between epochs; null: on, except for loaders whose items depend on the
    epoch (randomly sampled video frames decoded in the workers)."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, ..."""
    threads: PositiveInt | None = None
    """CPU threads of torch (``--threads``); null: the CPUs left after loader workers, other load and one
    spare core (see ``vision2seq.resources``)."""
    resume: bool = False
    """Resume from ``output_dir/last.pt`` (same as ``vision2seq train --resume``)."""
    overwrite: bool = False
    """Delete another run's files in ``output_dir`` (best.pt, last.pt, metrics.csv, tensorboard/) and start
    afresh; without it (or ``resume``) a folder holding a run is refused."""
    skip_nonfinite: bool = False
    """Skip a batch whose loss is NaN/inf (reported on stderr) instead of stopping the run."""
    checkpoint_every: Count = 0
    """Also write ``last.pt`` every this many optimiser steps (resume mid-epoch); 0: at epoch ends only."""
    checkpoint_minutes: Annotated[NonNegative, Note("0 disables")] = 10.0
    """Also write ``last.pt`` when this many minutes have passed since it was last written, so that an
    interrupted long epoch (the first one included) can be resumed; 0 disables."""
    max_steps: PositiveInt | None = None
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
    scst_samples: PositiveInt = 5
    """SCST: captions sampled per image at each step."""
    scst_lr: Positive = 5.0e-5
    """SCST: the learning rate (``train.lr`` of the run) when ``objective`` is ``scst``, unless ``train.lr``
    is set on the command line or in a file that itself sets ``objective: scst``: a config's ``lr`` is
    cross-entropy's, about ten times what self-critical fine-tuning takes (``load_config``)."""

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> TrainConfig:
        if not _rules(info):
            return self
        if self.resume and self.overwrite:
            raise contradiction(
                "train.resume and train.overwrite contradict each other (continue the run in "
                "output_dir, or delete it); set one of them to false"
            )
        if self.objective == "scst" and self.scst_baseline == "mean" and self.scst_samples < 2:
            raise contradiction(
                "train.scst_baseline 'mean' averages the other samples of an image, so it needs train."
                f"scst_samples >= 2 (got {self.scst_samples}); raise it, or use train.scst_baseline=greedy"
            )
        return self


@dataclass
class GenerationConfig:
    strategy: Literal["greedy", "beam", "sample"] = "beam"
    """``greedy``, batched ``beam`` search, or ``sample`` (with ``temperature`` and ``top_k``)."""
    # Bounded so that beam x length x batch stays a small allocation (the token and attention buffers grow
    # with their product): captions are a few dozen words.
    beam_size: Annotated[int, Strict(), Field(ge=1, le=MAX_BEAM_SIZE)] = 3
    max_len: Annotated[int, Strict(), Field(ge=1, le=MAX_CAPTION_LEN), Note("words")] = 20
    """Maximum caption length in tokens (without ``<bos>``/``<eos>``)."""
    length_penalty: NonNegative = 0.0
    """Beam-search length normalisation exponent (GNMT: score / ((5 + len) / 6) ** alpha); 0 ranks by total
    log-probability."""
    temperature: Positive = 1.0
    """Sampling only: divides the logits (below 1: more conservative)."""
    top_k: Count = 0
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
    min_word_freq: PositiveInt = 5
    """Words seen fewer times in the training captions map to ``<unk>``."""
    max_caption_len: PositiveInt = 30
    """Training captions are truncated to this many tokens."""
    cache_features: bool = True
    """Cache a frozen encoder's features on disk (read row by row) so epochs never re-run the CNN."""
    cache_dir: str | None = None
    """Feature-cache folder; null uses ``$VISION2SEQ_CACHE`` or ``~/.cache/vision2seq``."""
    max_val_images: PositiveInt | None = None
    """Score only the first N validation images each epoch (faster validation); null scores all."""
    skip_missing: bool = False
    """Skip referenced images that do not exist instead of stopping with an error."""


@dataclass
class CaptionDecoderConfig:
    kind: Literal["show_tell", "attention"] = "show_tell"
    """``show_tell`` (image feature conditions the LSTM) or ``attention`` (Show, Attend and Tell; needs
    ``model.encoder.output: grid``)."""
    embed_dim: PositiveInt = 256
    hidden_dim: PositiveInt = 512
    attention_dim: PositiveInt = 256
    num_layers: PositiveInt = 1
    dropout: Fraction = 0.3
    conditioning: Literal["auto", "init", "pre", "merge", "par"] = "merge"
    """Show and Tell only: where the image enters the LSTM, ``init`` (its initial state), ``pre`` (the
    first input, as in the paper), ``merge`` (concatenated with the LSTM output), ``par`` (an LSTM
    input at every step, beside the word), or ``auto``: ``init`` for a frozen encoder, ``merge`` for one
    that trains (``CaptionModelConfig.conditioning``)."""
    alpha_c: NonNegative = 1.0
    """Weight of the doubly stochastic attention regulariser (attention decoder only)."""
    positions: bool = True
    """Attention decoder only: add each grid cell's position to its features, so the attended context
    says where, not only what (captions stating "X above Y" need it). Checkpoints written before this key
    existed load without it."""


@dataclass
class CaptionModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: CaptionDecoderConfig = field(default_factory=CaptionDecoderConfig)
    feature_norm: Literal["dataset", "none"] = "dataset"
    """``dataset``: standardise each feature dimension with the training set's mean and std (stored in
    the checkpoint); ``none``: the decoder reads raw encoder features."""

    def conditioning(self) -> str:
        """``decoder.conditioning`` with ``auto`` resolved.

        Merge meets the image and the LSTM in one linear layer, so the image cannot vote for the shape
        that goes with the colour just named; init gives the LSTM the image, which can. On frozen ImageNet
        features (Lite0, generated scenes of two shapes) init named colour+shape right in 78.5% of test
        images, merge in 71%. A trained encoder learns best from merge, which reaches it from every word:
        with init a random-init ResNet-18 reached validation CIDEr-D 3.04 after 6 epochs, with merge 3.89.
        """
        if self.decoder.conditioning != "auto":
            return self.decoder.conditioning
        return "init" if self.encoder.trainable() is None else "merge"

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> CaptionModelConfig:
        if _rules(info) and self.decoder.kind == "attention" and self.encoder.output != "grid":
            raise contradiction(
                "model.decoder.kind 'attention' needs model.encoder.output 'grid' (pooled features leave "
                "one position to attend to); set model.encoder.output=grid, or model.decoder.kind=show_tell"
            )
        return self


@dataclass
class CaptioningConfig:
    task: Literal["captioning"] = "captioning"
    output_dir: str = "runs/captioning"
    seed: Seed = 0
    data: CaptionDataConfig = field(default_factory=CaptionDataConfig)
    model: CaptionModelConfig = field(default_factory=CaptionModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)


# --------------------------------------------------------------------------------------------------
# Clips: the frame keys of both video tasks (their ``data:`` sections inherit them)


@dataclass
class ClipFramesConfig:
    num_frames: PositiveInt = 8
    """Frames per clip (T)."""
    sampling: Literal["segment", "dense"] = "segment"
    """``segment``: TSN-style, random within T segments when training, their centres when evaluating;
    ``dense``: T consecutive frames every ``frame_stride``."""
    frame_stride: PositiveInt = 2
    cache_features: bool = True
    """Cache a frozen encoder's per-frame features on disk so epochs never decode video (one cache for
    both video tasks)."""
    cache_frames: PositiveInt = 32
    """About this many frames per video in the feature cache: whole clips (as ``classify`` samples them)
    at evenly spread positions, so evaluation reads exactly its clips and training draws among them."""
    cache_dir: str | None = None
    """Feature-cache folder; null uses ``$VISION2SEQ_CACHE`` or ``~/.cache/vision2seq``."""
    skip_missing: bool = False
    """Skip listed videos that do not exist (reported once) instead of stopping with an error."""


# --------------------------------------------------------------------------------------------------
# Video classification


@dataclass
class VideoDataConfig(ClipFramesConfig):
    videos: str = ""
    """Root of the class folders (``<Class>/<clip>.avi``) or frame folders."""
    annotations: str | None = None
    """Split-list folder (UCF101 ``classInd.txt``/``trainlist01.txt``, HMDB51 ``*_test_split1.txt``) or a
    CSV ``path,label`` list; null means one folder per class with a seeded train/val split."""
    format: Literal["auto", "ucf101", "hmdb51", "folders", "csv"] = "auto"
    split: Annotated[int, Strict(), Field(ge=1, le=3)] = 1
    """Official split number (1-3) for UCF101/HMDB51."""
    val_annotations: str | None = None
    """CSV format only: the validation list (default: the CSV's ``split`` column, else a seeded split)."""
    val_fraction: Annotated[Number, Field(gt=0, lt=1)] = 0.2
    """Share of the training list carved out (seeded, group-aware) as the validation split when the
    layout has none of its own (UCF101/HMDB51 train lists, class folders, CSV without a split)."""
    test_clips: PositiveInt = 1
    """Clips per video at evaluation time; their softmax scores are averaged (video-level accuracy)."""


@dataclass
class TemporalConfig:
    kind: Literal["lstm", "mean"] = "lstm"
    """``lstm`` over frame features, or ``mean``: the no-LSTM baseline (mean of frames -> linear)."""
    hidden_dim: PositiveInt = 512
    num_layers: PositiveInt = 1
    bidirectional: bool = False
    dropout: Fraction = 0.5
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
    seed: Seed = 0
    data: VideoDataConfig = field(default_factory=VideoDataConfig)
    model: VideoModelConfig = field(default_factory=VideoModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> VideoConfig:
        if _rules(info) and self.train.objective == "scst":
            raise contradiction(
                "train.objective 'scst' trains captioners (a CIDEr-D reward); video classification "
                "trains with train.objective=xent"
            )
        return self


# --------------------------------------------------------------------------------------------------
# Video captioning


@dataclass
class VideoCaptionDataConfig(ClipFramesConfig):
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
    msvd_split: list[Count] = field(default_factory=lambda: [1200, 100, 670])
    """MSVD only: how many clips of the mapping file, in ``vid<N>`` order, are train, val and test."""
    train_splits: list[str] = field(default_factory=lambda: ["train"])
    """Splits trained on (``train``, ``val``, ``test``; MSR-VTT's ``validate`` is ``val``)."""
    val_split: str = "val"
    """The split validated on during training (``evaluate --split`` picks any)."""
    min_word_freq: PositiveInt = 2
    """Words seen fewer times in the training captions map to ``<unk>``."""
    max_caption_len: PositiveInt = 30
    """Training captions are truncated to this many tokens."""
    max_val_videos: PositiveInt | None = None
    """Score only the first N validation clips each epoch (faster validation); null scores all."""
    num_frames: PositiveInt = 16
    """Frames per clip (T) the temporal encoder reads."""


@dataclass
class VideoCaptionTemporalConfig:
    kind: Literal["lstm", "mean"] = "lstm"
    """``lstm``: an order-aware LSTM over the frame features, attended over time by the decoder;
    ``mean``: the order-blind baseline (the mean frame feature is the decoder's only memory)."""
    hidden_dim: PositiveInt = 512
    """LSTM hidden size per direction."""
    num_layers: PositiveInt = 1
    bidirectional: bool = True
    dropout: Fraction = 0.3
    """Dropout on the frame features and between LSTM layers."""


@dataclass
class VideoCaptionDecoderConfig:
    embed_dim: PositiveInt = 256
    hidden_dim: PositiveInt = 512
    attention_dim: PositiveInt = 256
    num_layers: PositiveInt = 1
    dropout: Fraction = 0.3
    alpha_c: NonNegative = 0.0
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
    seed: Seed = 0
    data: VideoCaptionDataConfig = field(default_factory=VideoCaptionDataConfig)
    model: VideoCaptionModelConfig = field(default_factory=VideoCaptionModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)


ExperimentConfig = CaptioningConfig | VideoConfig | VideoCaptioningConfig
SCHEMAS: dict[str, type] = {cls.task: cls for cls in typing.get_args(ExperimentConfig)}
"""Task name -> schema; a config without ``task`` is a captioning config."""
_SCHEMA = Schema(SCHEMAS, default="captioning")


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read a YAML experiment file, apply ``key=value`` overrides, check every key, type and range and
    the cross-field rules.

    Args:
        path: YAML file, or None to start from the defaults (then ``task=...`` may be overridden).
        overrides: dotted assignments such as ``train.epochs=3``; values are parsed as YAML scalars.
    """
    lines: KeyLines = {}
    raw = read_config_file(Path(path), lines) if path is not None else {}
    lr_for_scst = _lr_set_for_scst(raw, overrides)  # before the overrides change the file's keys
    given: dict[str, str] = {}
    for item in overrides:
        apply_override(raw, item, lines)
        given[item.partition("=")[0].strip()] = item
    source = str(path) if path is not None else "config"
    try:
        config = _SCHEMA.validate(raw, source, rules=True, lines=lines)
        check_monitor(config, source)
    except ConfigError as exc:
        raise _blame_override(exc, given) from None
    if isinstance(config.model, CaptionModelConfig):
        # Resolved while the encoder's trainability is the cross-entropy run's: an SCST run from it
        # (below) freezes the encoder, and must still build the model its init_from checkpoint holds.
        config.model.decoder.conditioning = config.model.conditioning()
    if config.train.objective == "scst":
        if not lr_for_scst:
            config.train.lr = config.train.scst_lr
        encoder = getattr(config.model, "encoder", None)
        if encoder is not None and encoder.trainable_from == "auto":
            # SCST runs the policy in eval mode (batch norm on its running statistics), where an encoder
            # it updates drifts from those statistics. Kept as the cross-entropy run left it, the encoder
            # gives the features that model was validated on, cached once: on generated scenes the
            # attention config's validation CIDEr-D after two SCST epochs was 5.02 (4.94 training it),
            # each epoch about a quarter shorter.
            encoder.trainable_from = None
    return config


def _lr_set_for_scst(file: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> bool:
    """Whether ``train.lr`` was chosen for an SCST run: set on the command line, or in a file that sets
    ``objective: scst`` itself (a file training with cross-entropy sets cross-entropy's)."""
    if any(item.partition("=")[0].strip() == "train.lr" for item in overrides):
        return True
    train = file.get("train")
    return isinstance(train, dict) and train.get("objective") == "scst" and "lr" in train


def _blame_override(exc: ConfigError, given: dict[str, str]) -> ConfigError:
    """``exc`` naming the command-line override it is about (``train.epoch=3``), not the config file,
    when the key it is about (or a section above it) was set by an override."""
    if exc.key is None or exc.problem is None:
        return exc
    parts = exc.key.split(".")
    above = [given.get(".".join(parts[:depth])) for depth in range(len(parts), 0, -1)]
    below = [item for key, item in given.items() if key.startswith(exc.key + ".")]  # a misspelt section
    for item in [*above, *below]:
        if item is not None:
            return ConfigError(f"override {short(item)}: {exc.problem}", exc.key, exc.problem)
    return exc


_CAPTION_METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider")
_CLASS_METRICS = ("top1", "top5", "mean_class_accuracy")
MONITOR_METRICS: dict[str, tuple[str, ...]] = {
    "captioning": _CAPTION_METRICS,
    "video_captioning": _CAPTION_METRICS,
    "video_classification": (*_CLASS_METRICS, *(f"clip_{name}" for name in _CLASS_METRICS)),
}
"""What each task's validation reports (``train.monitor`` must be one of them; higher is better).
``top5`` needs at least five classes; that is checked when validation first runs."""


def check_monitor(config: ExperimentConfig, source: str = "config") -> None:
    """Refuse a ``train.monitor`` that the task's validation never reports, before any work."""
    known, monitor = MONITOR_METRICS.get(config.task, ()), config.train.monitor
    if monitor is not None and known and monitor not in known:
        problem = (
            f"train.monitor {short(monitor)} is not a metric of the {config.task} task's validation; "
            f"choose one of {', '.join(known)}"
        )
        raise ConfigError(f"{source}: {problem} (or null for the task's default)", "train.monitor", problem)


def check_generation(settings: GenerationConfig, source: str = "generation") -> GenerationConfig:
    """``settings`` after checking its numbers against their ranges (for values set in code, such as
    ``caption --max-len``, that bypass ``load_config``); returns it unchanged.

    Raises:
        ConfigError: a value out of its range, e.g. ``max_len`` above ``MAX_CAPTION_LEN``.
    """
    hints = typing.get_type_hints(GenerationConfig, include_extras=True)
    for name, annotation in hints.items():
        bounds, value = Range.of(annotation), getattr(settings, name)
        if bounds is not None and value is not None and not bounds.contains(value):
            note = f" ({bounds.note})" if bounds.note else ""
            problem = f"key 'generation.{name}' must be {bounds.describe()}{note}, got {short(value)}"
            raise ConfigError(f"{source}: {problem}", f"generation.{name}", problem)
    return settings


def config_from_dict(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Build a checked config from a plain dict (as stored in checkpoints; cross-field rules newer than
    the checkpoint are not applied)."""
    return _SCHEMA.validate(raw, source)


def check_consistency(config: ExperimentConfig, source: str = "config") -> None:
    """Refuse settings that contradict each other, naming the fix (``load_config`` runs these rules, the
    schemas' model validators).

    Raises:
        ConfigError: an attention decoder over pooled features (one position to attend to),
            ``train.resume`` together with ``train.overwrite``, SCST for a classifier, or SCST's mean
            baseline with fewer than two samples, or a ``train.monitor`` the task never reports.
    """
    _SCHEMA.validate(config_to_dict(config), source, rules=True)
    check_monitor(config, source)


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
