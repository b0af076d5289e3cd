"""matplotlib helpers shared by the plots of :mod:`vision2seq.viz`: lazy import (``Agg`` outside a
notebook), a figure with one axes or with a grid of panels."""

from __future__ import annotations

from typing import Any

import numpy as np


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot() -> Any:
    import matplotlib

    if not _interactive():
        matplotlib.use("Agg")  # headless (CLI, CI): draw to files only
    import matplotlib.pyplot as plt

    return plt


def _figure(ax: Any = None, size: tuple[float, float] = (6, 5)) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    return _pyplot().subplots(figsize=size)


def _grid(
    n: int, ncols: int, axes: Any = None, panel: tuple[float, float] = (3, 3)
) -> tuple[Any, np.ndarray]:
    """A figure with at least ``n`` panels in rows of ``ncols`` (or the given ``axes``), as a flat array."""
    if axes is not None:
        flat = np.asarray(axes, dtype=object).ravel()
        if len(flat) < n:
            raise ValueError(f"{n} panels need at least {n} axes, got {len(flat)}")
        return flat[0].figure, flat
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, grid = _pyplot().subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), squeeze=False)
    flat = grid.ravel()
    for ax in flat[n:]:
        ax.set_axis_off()
    return fig, flat


def _interactive() -> bool:
    import sys

    return "ipykernel" in sys.modules
