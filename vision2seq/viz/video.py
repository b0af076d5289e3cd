"""Plots of video classification results: :func:`plot_confusion_matrix` (and :func:`save_confusion_matrix`,
which writes the CSV even without matplotlib), :func:`plot_per_class_accuracy` and :func:`plot_stream`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vision2seq.evaluation.accuracy import write_confusion_csv
from vision2seq.viz._figures import _figure, has_matplotlib

if TYPE_CHECKING:
    from vision2seq.inference.classifier import StreamUpdate

__all__ = ["plot_confusion_matrix", "plot_per_class_accuracy", "plot_stream", "save_confusion_matrix"]


def save_confusion_matrix(metrics: Mapping[str, Any], stem: str | Path) -> list[Path]:
    """Write ``stem.csv`` (and ``stem.png`` when matplotlib is installed) from classification metrics."""
    names = [row["class"] for row in metrics["per_class"]]
    matrix = metrics["confusion_matrix"]
    stem = Path(stem)
    written = [stem.with_suffix(".csv")]
    write_confusion_csv(written[0], names, matrix)
    if has_matplotlib():
        fig, _ = plot_confusion_matrix(matrix, names)
        from vision2seq.files import atomic_write

        with atomic_write(stem.with_suffix(".png"), "wb", "write confusion matrix plot") as f:
            fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
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
    longest = max((len(str(name)) for name in class_names), default=0)
    rotation = 90 if n > 6 else 30 if n * longest > 24 else 0
    ax.set_xticks(range(n), class_names, rotation=rotation, ha="right" if rotation == 30 else "center")
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
    # The title stays over the matrix (pad lifts it clear of the top labels); what the colours mean goes
    # on the colour bar's own label, so no text runs from the matrix into the bar.
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("fraction of the true class" if normalize else "videos")
    ax.set_title("confusion matrix", pad=10)
    return fig, ax


def plot_per_class_accuracy(
    metrics: Mapping[str, Any], *, key: str = "accuracy", sort: bool = False, ax: Any = None
) -> tuple[Any, Any]:
    """Horizontal bars of each class's accuracy (= recall), with the mean class accuracy as a line.

    Args:
        metrics: Classification metrics with ``per_class`` (what ``evaluate_checkpoint`` returns).
        key: The per-class score to draw: ``accuracy``, ``precision`` or ``recall``.
        sort: Sort the classes by the score (worst at the bottom) instead of the class order.
        ax: Axes to draw into; a new figure by default.
    """
    rows = list(metrics["per_class"])
    if sort:
        rows.sort(key=lambda r: r[key])
    else:
        rows.reverse()  # barh draws bottom-up: keep the first class at the top
    names = [str(r["class"]) for r in rows]
    values = [float(r[key]) for r in rows]
    n = len(rows)
    fig, ax = _figure(ax, (6, max(2.5, 0.28 * n + 1.2)))
    bars = ax.barh(range(n), values, color="tab:blue")
    ax.set_yticks(range(n), names, fontsize=8 if n > 20 else 10)
    # The value labels sit in a column right of 1.0, where neither a bar nor the mean line reaches.
    ax.set_xlim(0, 1.32 if n <= 40 else 1.05)
    ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_xlabel(key)
    if n <= 40:
        for bar, row in zip(bars, rows, strict=True):
            ax.text(
                1.02,
                bar.get_y() + bar.get_height() / 2,
                f"{row[key]:.2f} (n={row['support']})",
                va="center",
                fontsize=8,
            )
    mean = metrics.get("mean_class_accuracy") if key in ("accuracy", "recall") else None
    if mean is None and values:
        mean = float(np.mean(values))
    title = f"per-class {key}"
    if mean is not None:
        # Named in the title rather than a legend box, which would hide a bar.
        ax.axvline(mean, color="tab:red", linestyle="--")
        title += f" (dashed line: mean {mean:.3f})"
    ax.set_title(title)
    return fig, ax


def plot_stream(
    updates: Sequence[StreamUpdate],
    class_names: Sequence[str],
    *,
    true_class: str | None = None,
    top: int = 5,
    ax: Any = None,
) -> tuple[Any, Any]:
    """Probability of each class over time while a clip is streamed frame by frame.

    Args:
        updates: The ``StreamUpdate`` s of ``VideoClassifier.stream_file`` (or ``.stream().push``), in order.
        class_names: Names of the classifier's classes (``classifier.class_names``).
        true_class: The clip's true class, drawn thicker, if known.
        top: With more than ``top`` classes, draw only the ``top`` classes that reach the highest
            probability (plus ``true_class``).
        ax: Axes to draw into; a new figure by default.
    """
    if not updates:
        raise ValueError("no stream updates to plot")
    probs = np.stack([np.asarray(u.probs, dtype=float) for u in updates])  # (steps, C)
    times = np.array([u.time_s for u in updates], dtype=float)
    if probs.shape[1] != len(class_names):
        raise ValueError(f"{probs.shape[1]} class probabilities for {len(class_names)} class names")
    shown = list(range(len(class_names)))
    if len(shown) > top:
        shown = sorted(np.argsort(-probs.max(axis=0), kind="stable")[:top].tolist())
        if true_class in class_names and class_names.index(true_class) not in shown:
            shown.append(class_names.index(true_class))
    fig, ax = _figure(ax, (7, 4))
    for c in shown:
        is_true = class_names[c] == true_class
        ax.plot(
            times,
            probs[:, c],
            marker="o" if len(times) <= 40 else None,
            markersize=3,
            linewidth=3 if is_true else 1.5,
            label=f"{class_names[c]} (true)" if is_true else class_names[c],
        )
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    final = updates[-1].labels[0] if updates[-1].labels else None
    title = "streaming prediction"
    if final is not None:
        title += f": {final[0]} ({final[1]:.2f}) after frame {updates[-1].frame}"
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig, ax
