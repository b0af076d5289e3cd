"""Plots and tables for evaluation (used by the CLI and the notebooks). matplotlib is optional: every
function that draws imports it lazily, and ``save_confusion_matrix`` writes only the CSV without it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vision2seq.evaluation.accuracy import write_confusion_csv


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(ax: Any = None, size: tuple[float, float] = (6, 5)) -> tuple[Any, Any]:
    import matplotlib

    if ax is not None:
        return ax.figure, ax
    if not _interactive():
        matplotlib.use("Agg")  # headless (CLI, CI): draw to files only
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)


def _interactive() -> bool:
    import sys

    return "ipykernel" in sys.modules


def save_confusion_matrix(metrics: Mapping[str, Any], stem: str | Path) -> list[Path]:
    """Write ``stem.csv`` (and ``stem.png`` when matplotlib is installed) from classification metrics."""
    names = [row["class"] for row in metrics["per_class"]]
    matrix = metrics["confusion_matrix"]
    stem = Path(stem)
    written = [stem.with_suffix(".csv")]
    write_confusion_csv(written[0], names, matrix)
    if has_matplotlib():
        fig, _ = plot_confusion_matrix(matrix, names)
        fig.savefig(stem.with_suffix(".png"), dpi=120, bbox_inches="tight")
        written.append(stem.with_suffix(".png"))
        import matplotlib.pyplot as plt

        plt.close(fig)
    return written


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], *, normalize: bool = True, ax: Any = None
) -> tuple[Any, Any]:
    """Heat map of a confusion matrix (rows: true class, columns: predicted), row-normalised by default."""
    m = np.asarray(matrix, dtype=float)
    if normalize:
        m = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    fig, ax = _figure(ax, (max(4, 0.5 * n + 2), max(3.5, 0.5 * n + 1.5)))
    image = ax.imshow(m, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(n), class_names, rotation=90 if n > 6 else 0)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    f"{m[i, j]:.2f}" if normalize else int(m[i, j]),
                    ha="center",
                    va="center",
                    color="white" if m[i, j] > 0.5 * m.max() else "black",
                    fontsize=8,
                )
    fig.colorbar(image, ax=ax)
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalize else ""))
    return fig, ax
