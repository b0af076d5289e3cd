"""A local encoder weights file (``model.encoder.weights: PATH``): read safely, loaded exactly.

Reading never executes code from the file (``torch.load(weights_only=True)``). Loading is strict: a
file whose tensors are not exactly the model's (a key the model lacks, a key the file lacks) is refused
with one line naming a few of them, because a silently half-loaded encoder gives features of partly
random weights that look like a working model. The one exception is the classifier head, which the
encoder drops anyway: a headless export loads.
"""

from __future__ import annotations

import pickle
import stat
from collections.abc import Collection, Mapping
from pathlib import Path

import torch
from torch import nn

from vision2seq.engine.checkpoint import refusal_reason
from vision2seq.errors import UserError

_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# How many key names an error message quotes.
_QUOTED = 3


def is_weights_file(weights: str | None) -> bool:
    """Whether ``weights`` names a local file rather than a weights enum or a pretrained tag."""
    return weights is not None and (
        Path(weights).suffix in _SUFFIXES or "/" in weights or Path(weights).exists()
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The ``name -> tensor`` mapping in ``path`` (unwrapped from ``state_dict`` / ``model``, without a
    DataParallel ``module.`` prefix).

    Raises:
        UserError: not a regular file (missing, a folder, a device such as /dev/zero), unreadable,
            content that would run code on loading, or not a state dict.
    """
    _check_regular_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(f"{path}: refused to load encoder weights: {refusal_reason(exc)}") from None
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise UserError(f"{path}: not a readable state-dict file ({first})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise UserError(f"{path}: expected a state dict (parameter name -> tensor) in the weights file")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _check_regular_file(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UserError(f"{path}: encoder weights file not found (model.encoder.weights)") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read encoder weights ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{path}: is a folder, not an encoder weights file (give the .pth file inside it)")
    if not stat.S_ISREG(mode):
        # A device (/dev/zero), FIFO or socket could be read forever or block: never open it.
        raise UserError(
            f"{path}: is not a regular file (a device, pipe or socket), not an encoder weights file"
        )
    if path.stat().st_size == 0:
        raise UserError(f"{path}: encoder weights file is empty")


def load_exactly(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    path: Path,
    optional: Collection[str] = (),
    hint: str = "",
) -> None:
    """Copy ``state`` into ``model``, refusing unexpected keys and missing keys other than ``optional``.

    Args:
        model: the full network (classifier head included), so a complete file matches it key for key.
        state: the file's tensors.
        path: named in errors.
        optional: keys the file may lack (the classifier head, which the encoder drops).
        hint: appended to a mismatch error, e.g. how to convert a file in another naming.
    """
    expected = model.state_dict()
    unexpected = [k for k in state if k not in expected]
    missing = [k for k in expected if k not in state and k not in optional]
    if unexpected or missing:
        parts = []
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_quote(unexpected)})")
        if missing:
            parts.append(f"{len(missing)} missing keys ({_quote(missing)})")
        raise UserError(f"{path}: weights do not match the model: {' and '.join(parts)}{hint}")
    wrong = [
        f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}"
        for k, v in state.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong:
        raise UserError(
            f"{path}: weights do not fit the model: {len(wrong)} tensors of another shape "
            f"(e.g. {'; '.join(wrong[:_QUOTED])}){hint}"
        )
    model.load_state_dict(state, strict=False)  # strict on everything but ``optional`` (checked above)


def _quote(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_QUOTED])
    return f"e.g. {shown}" if len(keys) > _QUOTED else shown
