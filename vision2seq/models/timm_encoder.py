"""A timm backbone (``model.encoder.name: timm:NAME``) as an image feature extractor.

timm is an optional extra (``pip install "vision2seq[timm]"``). The network is built by
``timm.create_model`` and its classifier is dropped after its weights are loaded, so a complete ImageNet
file matches key for key. Weights (``model.encoder.weights``):

* null: random initialisation;
* a local state-dict file in timm's key naming (strict: see ``weights_file``);
* ``DEFAULT`` (or ``pretrained``): timm's default pretrained tag for the architecture, downloaded and
  cached by timm (Hugging Face hub); any other word is a tag such as ``in1k`` or ``fb_in22k_ft_in1k``
  (``timm.list_pretrained("NAME.*")``). The name may carry the tag itself: ``timm:convnext_tiny.fb_in1k``.

The preprocessing (input size, mean/std, interpolation, resize-to-crop ratio) comes from timm's data
config of that tag (``resolve_model_data_config``), which timm's registry holds without any download,
so restoring a checkpoint needs neither network nor the weights file.

Features: a CNN's ``forward_features`` map ``(B, D, h, w)`` gives the grid; a ViT's patch tokens (class
and register tokens dropped) give it as ``(B, h*w, D)``. The pooled vector is timm's own pre-logits
feature (``forward_head(pre_logits=True)``): the representation the pretrained classifier reads (a
ViT's class token, a ConvNeXt's normalised average), so it is what a linear probe on these weights
would see; a mean of ViT patch tokens would discard the token the network was trained to summarise in.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.transforms import v2

from vision2seq.errors import UserError
from vision2seq.models.weights_file import is_weights_file, load_exactly, read_state_dict

PREFIX = "timm:"
_PRETRAINED_DEFAULT = ("default", "pretrained")
# Containers of a timm network whose children are stages of their own (fine-tuning from one onward).
_EXPANDED = ("blocks", "stages", "layers")
_INSTALL = 'pip install "vision2seq[timm]" (or pip install timm)'


def is_timm_name(name: str) -> bool:
    return name.startswith(PREFIX)


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise UserError(f"model.encoder.name: timm backbones need the timm package: {_INSTALL}") from None
    return timm


@dataclass
class Stage:
    """A run of a timm network's top-level modules (and the parameters it holds directly, such as a
    ViT's position embedding) that is frozen or trained as one."""

    modules: list[nn.Module] = field(default_factory=list)
    params: list[nn.Parameter] = field(default_factory=list)

    def parameters(self) -> list[nn.Parameter]:
        return [*self.params, *(p for m in self.modules for p in m.parameters())]


def resolve(name: str, weights: str | None) -> tuple[str, str | None, bool]:
    """``(architecture[.tag], file or None, download)`` for a ``timm:`` name and its weights setting."""
    timm = _timm()
    arch, _, name_tag = name.removeprefix(PREFIX).partition(".")
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch[:6]}*")[:6]
        suggestion = f" (close: {', '.join(close)})" if close else ""
        raise UserError(
            f"model.encoder.name: unknown timm model {arch!r}{suggestion}; see timm.list_models()"
        )
    if weights is None or weights.lower() in ("none", "null"):
        return (f"{arch}.{name_tag}" if name_tag else arch), None, False
    if is_weights_file(weights):
        return (f"{arch}.{name_tag}" if name_tag else arch), weights, False
    tag = name_tag if weights.lower() in _PRETRAINED_DEFAULT else weights
    if not tag:
        return arch, None, True  # timm's default tag
    tags = [t.partition(".")[2] for t in timm.list_pretrained(f"{arch}.*")]
    if tag not in tags:
        raise UserError(
            f"model.encoder.weights: unknown pretrained tag {tag!r} for timm:{arch} (choose DEFAULT, one "
            f"of {', '.join(tags) or 'none: it has no pretrained weights'}, a local weights file, or null)"
        )
    return f"{arch}.{tag}", None, True


def preprocessing_config(model: nn.Module, image_size: int | None) -> dict[str, Any]:
    """Crop and resize sizes, mean, std and interpolation of the model's pretrained data config."""
    timm = _timm()
    cfg = timm.data.resolve_model_data_config(model)
    crop = int(cfg["input_size"][-1])
    resize_short = math.floor(crop / float(cfg.get("crop_pct") or 1.0))
    if image_size is not None:
        resize_short, crop = round(image_size * resize_short / crop), image_size
    return {
        "resize_size": resize_short,
        "crop_size": crop,
        "mean": tuple(float(m) for m in cfg["mean"]),
        "std": tuple(float(s) for s in cfg["std"]),
        "interpolation": v2.InterpolationMode(cfg.get("interpolation") or "bilinear"),
    }


class TimmTrunk(nn.Module):
    """A headless timm network with named stages.

    Args:
        name: ``timm:NAME`` (optionally ``timm:NAME.TAG``).
        weights: see the module docstring.
        image_size: square input size overriding the pretrained config's (ViTs then interpolate their
            position embedding to the new grid).
        load_weights: False builds the architecture only (weights then come from a checkpoint), so
            restoring never downloads or reads the weights file.
    """

    def __init__(
        self, name: str, weights: str | None, image_size: int | None = None, load_weights: bool = True
    ) -> None:
        super().__init__()
        timm = _timm()
        arch, file, download = resolve(name, weights)
        kwargs: dict[str, Any] = {}
        default_size = timm.models.get_pretrained_cfg(arch).input_size[-1]
        if image_size is not None and image_size != default_size and _is_patch_model(timm, arch):
            kwargs["dynamic_img_size"] = True  # resample position embeddings to any input size
        self.model = self._create(timm, arch, download and load_weights, kwargs)
        if file is not None and load_weights:
            self._load_file(Path(file))
        self.model.reset_classifier(0)  # the head is dropped after the file matched the full network
        self.stages: OrderedDict[str, Stage] = _stages(self.model)
        self.preprocessing_config = preprocessing_config(self.model, image_size)
        self.num_prefix_tokens: int = int(getattr(self.model, "num_prefix_tokens", 0))
        self.channels_last: bool = str(getattr(self.model, "output_fmt", "NCHW")) == "NHWC"

    @staticmethod
    def _create(timm: Any, arch: str, pretrained: bool, kwargs: dict[str, Any]) -> nn.Module:
        try:
            return timm.create_model(arch, pretrained=pretrained, **kwargs)
        except TypeError as exc:
            raise UserError(
                f"model.encoder.image_size: timm:{arch} cannot change its input size ({exc}); set it to null"
            ) from None
        except Exception as exc:  # network and hub errors come in many classes
            if not pretrained:
                raise UserError(f"model.encoder.name: cannot build timm:{arch}: {exc}") from None
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise UserError(
                f"model.encoder.weights: could not download or read timm's {arch} weights "
                f"({exc.__class__.__name__}: {first}); without network access, point "
                "model.encoder.weights at a local weights file in timm's naming or set it to null"
            ) from None

    def _load_file(self, path: Path) -> None:
        state = read_state_dict(path)
        head = self.model.pretrained_cfg.get("classifier") or ()
        prefixes = (head,) if isinstance(head, str) else tuple(head)
        optional = [k for k in self.model.state_dict() if prefixes and k.startswith(prefixes)]
        hint = ""
        if any(k.startswith("_conv_stem") for k in state):
            hint = (
                "; the file is in EfficientNet-PyTorch naming: for EfficientNet-Lite0 convert it with "
                "python -m vision2seq.models.lite0 OUT.pth"
            )
        load_exactly(self.model, state, path, optional, hint)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """timm's ``forward_features``: ``(B, D, h, w)`` for a CNN, ``(B, prefix + N, D)`` for a ViT."""
        out = self.model.forward_features(images)
        return out.permute(0, 3, 1, 2) if self.channels_last and out.dim() == 4 else out

    def grid(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` as a grid ``(B, h*w, D)`` (a ViT's patch tokens, without class/register tokens)."""
        if features.dim() == 4:
            return features.flatten(2).transpose(1, 2)
        return features[:, self.num_prefix_tokens :]

    def pooled(self, features: torch.Tensor) -> torch.Tensor:
        """timm's pre-logits vector ``(B, D')`` for ``features``."""
        if self.channels_last and features.dim() == 4:
            features = features.permute(0, 2, 3, 1)  # back to the layout forward_head expects
        return self.model.forward_head(features, pre_logits=True)

    def grid_size(self, features: torch.Tensor, image_size: int) -> tuple[int, int]:
        """The ``(h, w)`` of the grid ``features`` (from an ``image_size`` input) are laid out on."""
        if features.dim() == 4:
            return int(features.shape[2]), int(features.shape[3])
        tokens = features.shape[1] - self.num_prefix_tokens
        patch = getattr(getattr(self.model, "patch_embed", None), "patch_size", None)
        if patch is not None:
            h, w = image_size // int(patch[0]), image_size // int(patch[1])
            if h * w == tokens:
                return h, w
        side = math.isqrt(tokens)
        if side * side != tokens:
            raise UserError("model.encoder.name: cannot lay out this model's tokens on a square grid")
        return side, side


def _is_patch_model(timm: Any, arch: str) -> bool:
    try:
        with torch.device("meta"):  # no memory, no initialisation: only the structure is looked at
            model = timm.create_model(arch, pretrained=False)
    except Exception:
        return False
    return hasattr(model, "patch_embed") and hasattr(model, "pos_embed")


def _stages(model: nn.Module) -> OrderedDict[str, Stage]:
    """Top-level children in order (containers such as ``blocks`` expanded), parameterless ones (pooling,
    dropout) joined to the stage before them, parameters held directly joined to the first stage."""
    stages: OrderedDict[str, Stage] = OrderedDict()
    last: Stage | None = None
    for child_name, child in model.named_children():
        if child_name in _EXPANDED and isinstance(child, nn.Sequential | nn.ModuleList):
            parts = [(f"{child_name}.{sub_name}", sub) for sub_name, sub in child.named_children()]
        else:
            parts = [(child_name, child)]
        for part_name, part in parts:
            if last is None or any(True for _ in part.parameters()):
                last = stages[part_name] = Stage([part])
            else:
                last.modules.append(part)
    first = next(iter(stages.values()), None)
    if first is None:
        raise UserError("model.encoder.name: cannot find the feature stages of this timm model")
    first.params.extend(p for _, p in model.named_parameters(recurse=False))
    return stages
