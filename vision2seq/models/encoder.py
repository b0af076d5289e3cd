"""A torchvision classification backbone, by name, as an image (or video-frame) feature extractor.

The classifier head is dropped; the remaining stages produce a feature map ``(B, D, H, W)`` that is
returned pooled ``(B, D)`` or as a grid ``(B, H*W, D)`` for attention. Weights come from a torchvision
weights enum (downloaded and cached the standard way by torchvision), a local state-dict file, or
random initialisation; the preprocessing (input size, mean/std) comes from the weights enum and the
way a non-square image is made square from ``model.encoder.resize``; the encoder carries it, so it is
identical at training, caching and prediction time.

A name ``timm:NAME`` builds a timm backbone instead (``timm_encoder``, an optional extra); a local
weights file of either kind is read and loaded by ``weights_file``: safely, and only when its keys are
exactly the model's.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torchvision
from torch import nn
from torchvision.transforms import v2

from vision2seq.errors import UserError
from vision2seq.models.timm_encoder import TimmTrunk, is_timm_name
from vision2seq.models.weights_file import is_weights_file, load_exactly, read_state_dict

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
    """A headless torchvision (or timm) backbone with frozen / fine-tuned stages.

    Args:
        name: torchvision model name (``torchvision.models.list_models()``) or ``timm:NAME``.
        weights: weights enum name (timm: ``DEFAULT`` or a pretrained tag), path to a local state dict,
            or None for random initialisation.
        output: ``pooled`` -> ``(B, D)``; ``grid`` -> ``(B, H*W, D)``.
        trainable_from: None (frozen), ``all``, or the first stage to fine-tune (see ``stage_names``).
        image_size: square input size overriding the weights' preprocessing.
        resize: how a non-square image becomes square: ``squash``, ``pad`` or ``crop`` (``Preprocessing``).
        load_weights: False builds the architecture only (weights then come from a checkpoint), so
            restoring a trained model never downloads or reads a weights file.
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
        if resize not in RESIZE_MODES:
            raise UserError(f"model.encoder.resize: unknown mode {resize!r} (choose squash, pad or crop)")
        self.name, self.output = name, output
        self.trunk: TimmTrunk | None = None
        if is_timm_name(name):
            self.trunk = TimmTrunk(name, weights, image_size, load_weights)
            self.preprocessing = Preprocessing(**self.trunk.preprocessing_config, resize=resize)
            # Each stage's modules and parameters, for freezing; they are registered under trunk.model.
            self._stage_parts: dict[str, tuple[list[nn.Module], list[nn.Parameter]]] = {
                key: (stage.modules, stage.parameters()) for key, stage in self.trunk.stages.items()
            }
        else:
            self.preprocessing = preprocessing_for(name, weights, image_size, resize)
            self.stages = nn.ModuleDict(_torchvision_stages(name, weights if load_weights else None))
            self._stage_parts = {
                key: ([stage], list(stage.parameters())) for key, stage in self.stages.items()
            }
        self.trainable_stages = self._freeze(trainable_from)
        size = self.preprocessing.crop_size
        try:
            with torch.no_grad():  # in eval mode: batch norm cannot take batch statistics of one image
                fmap = self.eval()._features(torch.zeros(1, 3, size, size))
                probe = self._output(fmap)
        except Exception:  # e.g. torchvision ViTs, whose forward() does more than chain their children
            probe = fmap = None
        self.train()  # puts frozen stages in eval mode (batch norm, dropout, stochastic depth)
        if probe is None or fmap is None or (self.trunk is None and fmap.dim() != 4):
            raise UserError(
                f"model.encoder.name: {name} is not supported as a feature encoder (no convolutional "
                "feature map); use a CNN such as resnet50, convnext_tiny or efficientnet_b0, or timm:NAME"
            )
        self.feature_dim: int = probe.shape[-1]
        self.grid_size: tuple[int, int] = (
            self.trunk.grid_size(fmap, size) if self.trunk is not None else (fmap.shape[2], fmap.shape[3])
        )

    @property
    def stage_names(self) -> list[str]:
        return [key.replace(":", ".") for key in self._stage_parts]

    @property
    def frozen(self) -> bool:
        """True when no parameter is trained (features may then be cached)."""
        return not self.trainable_stages

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images -> ``(B, D, h, w)`` features (torchvision backbones)."""
        x = images
        for stage in self.stages.values():
            x = stage(x)
        return x

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk.features(images) if self.trunk is not None else self.feature_map(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._output(self._features(images))

    def _output(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) or a ViT's (B, prefix + h*w, D) -> pooled (B, D) or grid (B, h*w, D)."""
        if self.trunk is not None:
            return self.trunk.pooled(features) if self.output == "pooled" else self.trunk.grid(features)
        if self.output == "pooled":
            return features.mean(dim=(2, 3))  # (B, D)
        return features.flatten(2).transpose(1, 2)  # (B, h*w, D)

    def train(self, mode: bool = True) -> ImageEncoder:
        # Frozen stages stay in eval mode so their batch-norm statistics never drift.
        super().train(mode)
        for key, (modules, _) in self._stage_parts.items():
            if key not in self.trainable_stages:
                for module in modules:
                    module.eval()
        return self

    def _freeze(self, trainable_from: str | None) -> set[str]:
        keys = list(self._stage_parts)
        if trainable_from in (None, "none"):
            start = len(keys)
        elif trainable_from == "all":
            start = 0
        else:
            wanted = str(trainable_from)
            matches = [
                i
                for i, k in enumerate(keys)
                if k.replace(":", ".") == wanted or k.replace(":", ".").split(".")[-1] == wanted
            ]
            if not matches:
                raise UserError(
                    f"model.encoder.trainable_from: no stage {wanted!r} in {self.name} "
                    f"(stages: {', '.join(self.stage_names)}; or all / null)"
                )
            start = matches[0]
        trainable = set(keys[start:])
        for key, (_, params) in self._stage_parts.items():
            for param in params:
                param.requires_grad_(key in trainable)
        return trainable


def _torchvision_stages(name: str, weights: str | None) -> OrderedDict[str, nn.Module]:
    """The stages of torchvision's ``name`` with ``weights`` loaded (a file only if it matches exactly)."""
    if weights is None or weights.lower() in ("none", "null"):
        return _trunk_stages(name, _get_model(name, None))
    if is_weights_file(weights):
        model = _get_model(name, None)
        stages = _trunk_stages(name, model)
        path = Path(weights)
        state = read_state_dict(path)
        kept = {t.data_ptr() for stage in stages.values() for t in stage.state_dict().values()}
        head = [k for k, t in model.state_dict().items() if t.data_ptr() not in kept]
        load_exactly(model, state, path, optional=head)
        return stages
    enum = weights_enum(name, weights)
    try:
        return _trunk_stages(name, _get_model(name, enum))
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
