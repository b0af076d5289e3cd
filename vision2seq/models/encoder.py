"""A torchvision classification backbone, by name, as an image (or video-frame) feature extractor.

The classifier head is dropped; the remaining stages produce a feature map ``(B, D, H, W)`` that is
returned pooled ``(B, D)`` or as a grid ``(B, H*W, D)`` for attention. Weights come from a torchvision
weights enum (downloaded and cached the standard way by torchvision), a local state-dict file, or
random initialisation; the preprocessing (input size, mean/std) comes from the weights enum and the
way a non-square image is made square from ``model.encoder.resize``; the encoder carries it, so it is
identical at training, caching and prediction time.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torchvision
from torch import nn
from torchvision.transforms import v2

from vision2seq.engine.checkpoint import refusal_reason
from vision2seq.errors import UserError

# Top-level children from which the classifier head begins; everything before them is the trunk.
_HEAD_NAMES = ("avgpool", "fc", "classifier", "head", "heads", "dropout")
# Containers whose children are exposed as individual stages (for fine-tuning from a stage onward).
_EXPANDED = ("features", "layers", "trunk_output", "blocks")


ResizeMode = Literal["squash", "pad", "crop"]
RESIZE_MODES: tuple[str, ...] = ("squash", "pad", "crop")


@dataclass(frozen=True)
class Preprocessing:
    """The image preprocessing of a set of weights: make the image square, normalise.

    ``resize`` says how a non-square image becomes ``crop_size`` square: ``squash`` resizes the whole
    image (aspect ratio changes, nothing is lost), ``pad`` fits it inside black bars, ``crop`` resizes
    the short side to ``resize_size`` and cuts the centre out (the weights' ImageNet preprocessing).
    """

    resize_size: int
    crop_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: v2.InterpolationMode
    resize: ResizeMode = "crop"

    def geometry(self) -> v2.Compose:
        """The resizing steps alone (PIL image or ``(..., C, H, W)`` tensor in, same kind out)."""
        if self.resize == "squash":
            size = (self.crop_size, self.crop_size)
            return v2.Compose([v2.Resize(size, interpolation=self.interpolation, antialias=True)])
        if self.resize == "pad":
            return v2.Compose([LetterBox(self.crop_size, self.interpolation)])
        return v2.Compose(
            [
                v2.Resize(self.resize_size, interpolation=self.interpolation, antialias=True),
                v2.CenterCrop(self.crop_size),
            ]
        )

    def transform(self) -> v2.Compose:
        """PIL image / uint8 tensor -> normalised float tensor ``(3, crop, crop)``."""
        return v2.Compose(
            [
                v2.ToImage(),
                *self.geometry().transforms,
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(self.mean, self.std),
            ]
        )


class LetterBox(v2.Transform):
    """Resize so the long side is ``size``, then pad the short side evenly with black to a square."""

    def __init__(self, size: int, interpolation: v2.InterpolationMode) -> None:
        super().__init__()
        self.size, self.interpolation = size, interpolation

    def transform(self, inpt, params):
        height, width = v2.functional.get_size(inpt)
        scale = self.size / max(height, width)
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        out = v2.functional.resize(inpt, [new_h, new_w], interpolation=self.interpolation, antialias=True)
        left, top = (self.size - new_w) // 2, (self.size - new_h) // 2
        padding = [left, top, self.size - new_w - left, self.size - new_h - top]
        return v2.functional.pad(out, padding, fill=0)


def weights_enum(name: str, weights: str) -> torchvision.models.WeightsEnum:
    """Resolve a weights name (``DEFAULT``, ``IMAGENET1K_V2`` or ``ResNet50_Weights.IMAGENET1K_V2``)."""
    enum = _weights_class(name)
    key = weights.split(".")[-1]
    try:
        return enum[key]
    except KeyError:
        names = ", ".join(["DEFAULT", *enum.__members__])
        raise UserError(
            f"model.encoder.weights: unknown weights {weights!r} for {name} (choose one of {names}, "
            "a path to a local weights file, or null)"
        ) from None


def _weights_class(name: str) -> type[torchvision.models.WeightsEnum]:
    try:
        return torchvision.models.get_model_weights(name)
    except ValueError:
        raise UserError(
            f"model.encoder.name: unknown torchvision model {name!r} "
            "(see torchvision.models.list_models(), e.g. resnet50, mobilenet_v3_large, convnext_tiny)"
        ) from None


def is_weights_file(weights: str | None) -> bool:
    """Whether ``weights`` names a local file rather than a torchvision weights enum."""
    return weights is not None and (
        Path(weights).suffix in (".pt", ".pth", ".bin", ".ckpt") or "/" in weights or Path(weights).is_file()
    )


def preprocessing_for(
    name: str, weights: str | None, image_size: int | None = None, resize: ResizeMode = "crop"
) -> Preprocessing:
    """The preprocessing for ``name`` with ``weights`` (the DEFAULT weights' for files / random init).

    Args:
        name: torchvision model name.
        weights: weights enum name, local file, or None.
        image_size: square input size overriding the weights' crop size.
        resize: how a non-square image becomes square (see ``Preprocessing``).
    """
    if resize not in RESIZE_MODES:
        raise UserError(f"model.encoder.resize: unknown mode {resize!r} (choose squash, pad or crop)")
    enum = _weights_class(name)
    chosen = weights_enum(name, weights) if weights and not is_weights_file(weights) else enum.DEFAULT
    preset = chosen.transforms()
    crop, resize_short = int(preset.crop_size[0]), int(preset.resize_size[0])
    if image_size is not None:
        resize_short, crop = round(image_size * resize_short / crop), image_size
    return Preprocessing(
        resize_short, crop, tuple(preset.mean), tuple(preset.std), preset.interpolation, resize
    )


class ImageEncoder(nn.Module):
    """A headless torchvision backbone with frozen / fine-tuned stages.

    Args:
        name: torchvision model name (``torchvision.models.list_models()``).
        weights: weights enum name, path to a local state dict, or None for random initialisation.
        output: ``pooled`` -> ``(B, D)``; ``grid`` -> ``(B, H*W, D)``.
        trainable_from: None (frozen), ``all``, or the first stage to fine-tune (see ``stage_names``).
        image_size: square input size overriding the weights' preprocessing.
        resize: how a non-square image becomes square: ``squash``, ``pad`` or ``crop`` (``Preprocessing``).
        load_weights: False builds the architecture only (weights then come from a checkpoint), so
            restoring a trained model never downloads anything.
    """

    def __init__(
        self,
        name: str = "resnet50",
        weights: str | None = "DEFAULT",
        output: Literal["pooled", "grid"] = "pooled",
        trainable_from: str | None = None,
        image_size: int | None = None,
        load_weights: bool = True,
        resize: ResizeMode = "crop",
    ) -> None:
        super().__init__()
        self.name, self.output = name, output
        self.preprocessing = preprocessing_for(name, weights, image_size, resize)
        backbone = _build_backbone(name, weights if load_weights else None)
        self.stages = nn.ModuleDict(_trunk_stages(name, backbone))
        self.trainable_stages = self._freeze(trainable_from)
        size = self.preprocessing.crop_size
        try:
            with torch.no_grad():  # in eval mode: batch norm cannot take batch statistics of one image
                fmap = self.eval().feature_map(torch.zeros(1, 3, size, size))
        except Exception:  # e.g. ViTs, whose forward() does more than chain their children
            fmap = None
        self.train()  # puts frozen stages in eval mode (batch norm, dropout, stochastic depth)
        if fmap is None or fmap.dim() != 4:
            raise UserError(
                f"model.encoder.name: {name} is not supported as a feature encoder (no convolutional "
                "feature map); use a CNN such as resnet50, convnext_tiny or efficientnet_b0"
            )
        self.feature_dim: int = fmap.shape[1]
        self.grid_size: tuple[int, int] = (fmap.shape[2], fmap.shape[3])

    @property
    def stage_names(self) -> list[str]:
        return [key.replace(":", ".") for key in self.stages]

    @property
    def frozen(self) -> bool:
        """True when no parameter is trained (features may then be cached)."""
        return not self.trainable_stages

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images -> ``(B, D, h, w)`` features."""
        x = images
        for stage in self.stages.values():
            x = stage(x)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        fmap = self.feature_map(images)  # (B, D, h, w)
        if self.output == "pooled":
            return fmap.mean(dim=(2, 3))  # (B, D)
        return fmap.flatten(2).transpose(1, 2)  # (B, h*w, D)

    def train(self, mode: bool = True) -> ImageEncoder:
        # Frozen stages stay in eval mode so their batch-norm statistics never drift.
        super().train(mode)
        for key, stage in self.stages.items():
            if key not in self.trainable_stages:
                stage.eval()
        return self

    def _freeze(self, trainable_from: str | None) -> set[str]:
        keys = list(self.stages)
        if trainable_from in (None, "none"):
            start = len(keys)
        elif trainable_from == "all":
            start = 0
        else:
            wanted = str(trainable_from)
            matches = [
                i for i, k in enumerate(keys) if k.replace(":", ".") == wanted or k.split(":")[-1] == wanted
            ]
            if not matches:
                raise UserError(
                    f"model.encoder.trainable_from: no stage {wanted!r} in {self.name} "
                    f"(stages: {', '.join(self.stage_names)}; or all / null)"
                )
            start = matches[0]
        trainable = set(keys[start:])
        for key, stage in self.stages.items():
            stage.requires_grad_(key in trainable)
        return trainable


def _build_backbone(name: str, weights: str | None) -> nn.Module:
    if weights is None or weights.lower() in ("none", "null"):
        return _get_model(name, None)
    if is_weights_file(weights):
        model = _get_model(name, None)
        _load_weights_file(model, Path(weights))
        return model
    enum = weights_enum(name, weights)
    try:
        return _get_model(name, enum)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise UserError(
            f"model.encoder.weights: could not download or read {enum} ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); without network access, point "
            "model.encoder.weights at a local weights file or set it to null"
        ) from None


def _get_model(name: str, weights: torchvision.models.WeightsEnum | None) -> nn.Module:
    try:
        return torchvision.models.get_model(name, weights=weights)
    except ValueError as exc:
        raise UserError(f"model.encoder.name: cannot build {name!r}: {exc}") from None


def _load_weights_file(model: nn.Module, path: Path) -> None:
    if not path.exists():
        raise UserError(f"{path}: encoder weights file not found (model.encoder.weights)")
    if not path.is_file():  # a folder, a device such as /dev/zero, a FIFO: never read (it may not end)
        raise UserError(f"{path}: not a regular file; model.encoder.weights needs a state-dict file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(f"{path}: refused to load encoder weights: {refusal_reason(exc)}") from None
    except Exception as exc:
        raise UserError(f"{path}: not a readable state-dict file ({str(exc).splitlines()[0]})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise UserError(f"{path}: expected a state dict (parameter name -> tensor)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise UserError(f"{path}: weights do not fit this model ({str(exc).splitlines()[1:2]})") from None
    # A missing classifier head is fine (it is dropped); a missing trunk tensor is not.
    missing = [k for k in result.missing_keys if not k.startswith(_HEAD_NAMES)]
    if missing:
        raise UserError(f"{path}: weights file lacks {len(missing)} backbone tensors, e.g. {missing[0]!r}")


def _trunk_stages(name: str, model: nn.Module) -> OrderedDict[str, nn.Module]:
    """The backbone's children before its pooling/classifier head, as named stages."""
    stages: OrderedDict[str, nn.Module] = OrderedDict()
    for child_name, child in model.named_children():
        if child_name in _HEAD_NAMES:
            break
        if child_name in _EXPANDED and isinstance(child, nn.Sequential):
            for sub_name, sub in child.named_children():
                stages[f"{child_name}:{sub_name}"] = sub  # ModuleDict keys cannot contain "."
        else:
            stages[child_name] = child
    if name.startswith("densenet"):
        stages["relu"] = nn.ReLU()  # DenseNet applies its final ReLU in forward(), not as a module
    if name.startswith("convnext"):
        stages["norm"] = model.classifier[0]  # ConvNeXt's LayerNorm2d sits in its classifier
    if not stages:
        raise UserError(f"model.encoder.name: cannot find the feature stages of {name}")
    return stages
