"""Plots and tables for evaluation (used by the CLI and the notebooks). matplotlib is optional: every
function that draws imports it lazily, and ``save_confusion_matrix`` writes only the CSV without it.

Every plotting function takes an optional ``ax`` (grids: ``axes``) to draw into and returns
``(fig, ax)`` (grids: ``(fig, axes)``); outside a notebook it draws with the headless ``Agg`` backend.

- Tables: :func:`metrics_table`, :func:`compare_table`, :func:`per_class_table` (rendered as HTML in
  notebooks, as aligned text by ``print``).
- Captioning: :func:`caption_samples`, :func:`caption_grid`, :func:`plot_attention` (with
  :func:`upsample_attention`), :func:`beam_size_sweep`, :func:`plot_metric_vs_beam`.
- Video: :func:`plot_confusion_matrix`, :func:`plot_per_class_accuracy`, :func:`plot_stream`.
"""

from __future__ import annotations

import copy
import html
import random
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vision2seq.evaluation.accuracy import write_confusion_csv

if TYPE_CHECKING:
    from PIL import Image

    from vision2seq.captioner import Captioner
    from vision2seq.classifier import StreamUpdate

__all__ = [
    "CaptionSamples",
    "Table",
    "beam_size_sweep",
    "caption_grid",
    "caption_samples",
    "caption_words",
    "compare_table",
    "has_matplotlib",
    "metrics_table",
    "model_view",
    "per_class_table",
    "plot_attention",
    "plot_confusion_matrix",
    "plot_metric_vs_beam",
    "plot_per_class_accuracy",
    "plot_stream",
    "save_confusion_matrix",
    "upsample_attention",
]


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


# --------------------------------------------------------------------------------------------------
# Tables


class Table:
    """A small table: HTML in notebooks (``_repr_html_``), aligned text with ``print``, or Markdown.

    Args:
        columns: Column headers.
        rows: One sequence of cells per row; floats are shown with ``digits`` decimals.
        title: Optional caption.
        digits: Decimals of float cells.
    """

    def __init__(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        title: str | None = None,
        digits: int = 4,
    ) -> None:
        self.columns = [str(c) for c in columns]
        self.rows = [list(row) for row in rows]
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"row {row!r} has {len(row)} cells for {len(self.columns)} columns")
        self.title, self.digits = title, digits

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[Any]:
        """The cells of column ``name``."""
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def _cell(self, value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.{self.digits}f}"
        return "" if value is None else str(value)

    def _text_rows(self) -> list[list[str]]:
        return [[self._cell(v) for v in row] for row in self.rows]

    @staticmethod
    def _numeric(value: Any) -> bool:
        return isinstance(value, int | float | np.number) and not isinstance(value, bool)

    def __str__(self) -> str:
        cells = self._text_rows()
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(self.columns)]
        numeric = [all(self._numeric(row[i]) for row in self.rows) for i in range(len(self.columns))]

        def line(values: Sequence[str]) -> str:
            return "  ".join(
                v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
            ).rstrip()

        out = [self.title] if self.title else []
        out += [line(self.columns), line(["-" * w for w in widths])]
        out += [line(r) for r in cells]
        return "\n".join(out)

    def __repr__(self) -> str:
        return str(self)

    def to_markdown(self) -> str:
        """The table as GitHub-flavoured Markdown."""
        numeric = [all(self._numeric(row[i]) for row in self.rows) for i in range(len(self.columns))]
        out = [f"**{self.title}**", ""] if self.title else []
        out.append("| " + " | ".join(self.columns) + " |")
        out.append("|" + "|".join("---:" if num else "---" for num in numeric) + "|")
        out += ["| " + " | ".join(r) + " |" for r in self._text_rows()]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        numeric = [all(self._numeric(row[i]) for row in self.rows) for i in range(len(self.columns))]

        def cell(tag: str, text: str, num: bool) -> str:
            align = ' style="text-align: right"' if num else ' style="text-align: left"'
            return f"<{tag}{align}>{html.escape(text)}</{tag}>"

        parts = ["<table>"]
        if self.title:
            parts.append(f"<caption>{html.escape(self.title)}</caption>")
        parts.append(
            "<thead><tr>"
            + "".join(cell("th", h, n) for h, n in zip(self.columns, numeric, strict=True))
            + "</tr></thead><tbody>"
        )
        for row in self._text_rows():
            parts.append(
                "<tr>" + "".join(cell("td", v, n) for v, n in zip(row, numeric, strict=True)) + "</tr>"
            )
        parts.append("</tbody></table>")
        return "".join(parts)


def _scalar_items(metrics: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [
        (k, v)
        for k, v in metrics.items()
        if isinstance(v, int | float | np.number) and not isinstance(v, bool)
    ]


def metrics_table(
    metrics: Mapping[str, Any], keys: Sequence[str] | None = None, title: str | None = None, digits: int = 4
) -> Table:
    """A two-column ``metric | value`` table of the scalar entries of an evaluation result.

    Args:
        metrics: What ``evaluate_checkpoint`` returns (lists such as ``per_class`` and the confusion
            matrix are left out; see :func:`per_class_table`).
        keys: The metrics to show, in this order; all scalar ones by default.
        title: Optional caption.
        digits: Decimals shown.

    Raises:
        KeyError: A key of ``keys`` is not in ``metrics``.
    """
    items = _scalar_items(metrics) if keys is None else [(k, metrics[k]) for k in keys]
    return Table(["metric", "value"], items, title, digits)


def compare_table(
    results: Mapping[Any, Mapping[str, Any]],
    keys: Sequence[str] | None = None,
    label: str = "run",
    title: str | None = None,
    digits: int = 4,
) -> Table:
    """One row per evaluation result (e.g. per beam size), one column per scalar metric.

    Args:
        results: Row label -> metrics, e.g. what :func:`beam_size_sweep` returns.
        keys: The metric columns, in this order; by default the scalar metrics of the first result.
        label: Header of the row-label column.
        title: Optional caption.
        digits: Decimals shown.
    """
    if keys is None:
        first = next(iter(results.values()), {})
        keys = [k for k, _ in _scalar_items(first)]
    rows = [[name, *(m[k] for k in keys)] for name, m in results.items()]
    return Table([label, *keys], rows, title, digits)


def per_class_table(metrics: Mapping[str, Any], title: str | None = None, digits: int = 3) -> Table:
    """``class | accuracy | precision | recall | support`` from classification metrics (``per_class``)."""
    columns = ["class", "accuracy", "precision", "recall", "support"]
    return Table(columns, [[row[c] for c in columns] for row in metrics["per_class"]], title, digits)


# --------------------------------------------------------------------------------------------------
# Classification


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
    fig.colorbar(image, ax=ax)
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalize else ""))
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
    ax.set_xlim(0, 1.25 if n <= 40 else 1.05)  # room for the value labels
    ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_xlabel(key)
    if n <= 40:
        for bar, row in zip(bars, rows, strict=True):
            ax.text(
                bar.get_width() + 0.01,
                bar.get_y() + bar.get_height() / 2,
                f"{row[key]:.2f} (n={row['support']})",
                va="center",
                fontsize=8,
            )
    mean = metrics.get("mean_class_accuracy") if key in ("accuracy", "recall") else None
    if mean is None and values:
        mean = float(np.mean(values))
    if mean is not None:
        ax.axvline(mean, color="tab:red", linestyle="--", label=f"mean {mean:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"per-class {key}")
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


# --------------------------------------------------------------------------------------------------
# Captioning


@dataclass
class CaptionSamples:
    """Some images of a split with their generated and reference captions, for drawing."""

    keys: list[str]
    """Image ids of the dataset."""
    images: list[Image.Image]
    """The images as the model sees them: resized and centre-cropped (not normalised)."""
    generated: list[str]
    """Generated captions."""
    words: list[list[str]]
    """The generated tokens of each caption (one per attention map)."""
    references: list[list[str]]
    """Reference captions."""
    attention: list[np.ndarray | None]
    """Per image, ``(len(words), grid_h, grid_w)`` attention weights, or None without attention."""

    def __len__(self) -> int:
        return len(self.keys)


def model_view(captioner: Captioner, image: Image.Image) -> Image.Image:
    """``image`` resized and centre-cropped as the captioner's preprocessing does (without normalising)."""
    from torchvision.transforms import v2

    p = captioner.model.encoder.preprocessing
    crop = v2.Compose(
        [v2.Resize(p.resize_size, interpolation=p.interpolation, antialias=True), v2.CenterCrop(p.crop_size)]
    )
    return crop(image.convert("RGB"))


def caption_samples(
    captioner: Captioner | str | Path,
    split: str = "test",
    n: int = 8,
    overrides: Sequence[str] = (),
    *,
    beam_size: int | None = None,
    seed: int | None = 0,
    device: str = "auto",
) -> CaptionSamples:
    """Caption ``n`` images of ``split`` of the checkpoint's dataset, keeping attention for drawing.

    Args:
        captioner: A ``Captioner`` or the path of a captioning checkpoint.
        split: Dataset split (``test``, ``val``, ...), read from the checkpoint's config.
        n: Number of images.
        overrides: ``key=value`` config overrides, e.g. the data paths on this machine or
            ``generation.beam_size=5``.
        beam_size: Beam size; the (overridden) generation settings of the checkpoint by default.
        seed: Seed of the random choice of images; None takes the first ``n``.
        device: Where to run a checkpoint loaded from a path.
    """
    import torch

    from vision2seq.captioner import Captioner
    from vision2seq.data.caption_datasets import prepare_records
    from vision2seq.data.images import load_image

    if not isinstance(captioner, Captioner):
        captioner = Captioner.from_checkpoint(captioner, device=device)
    config = captioner.with_overrides(overrides)
    captioner = copy.copy(captioner)  # generation settings may be overridden too; leave the caller's as is
    captioner.config = config
    records = prepare_records(config, split)
    if seed is not None:
        records = random.Random(seed).sample(records, len(records))
    records = records[:n]
    originals = [load_image(r.path) for r in records]
    pixels = torch.stack([captioner.transform(im) for im in originals])
    generated, maps = captioner.caption_tensors(pixels, beam_size=beam_size, return_attention=True)
    words = [caption_words(text) for text in generated]
    attention: list[np.ndarray | None] = [None] * len(records)
    if maps is not None:
        attention = [m.float().numpy() for m in maps]
        for i, (ws, m) in enumerate(zip(words, attention, strict=True)):
            if len(ws) != len(m):  # cannot happen for captions of vocabulary words; keep one label per map
                words[i] = [*ws[: len(m)], *["?"] * (len(m) - len(ws))]
    return CaptionSamples(
        keys=[r.key for r in records],
        images=[model_view(captioner, im) for im in originals],
        generated=list(generated),
        words=words,
        references=[list(r.captions) for r in records],
        attention=attention,
    )


# A vocabulary token: a word (with inner apostrophes), <unk>, or one punctuation mark.
_WORD = re.compile(r"<unk>|\w+(?:'\w+)*|[^\w\s]")


def caption_words(caption: str) -> list[str]:
    """The tokens of a generated caption, one per decoding step (so one per attention map).

    Captions are the decoder's tokens joined by ``detokenize``; splitting them like the tokenizer does
    (keeping ``<unk>`` whole) gives the tokens back.
    """
    return _WORD.findall(caption)


def caption_grid(
    images: Sequence[Any],
    generated: Sequence[str],
    references: Sequence[Sequence[str]] | None = None,
    ncols: int = 4,
    *,
    max_references: int = 2,
    width: int = 34,
    axes: Any = None,
) -> tuple[Any, np.ndarray]:
    """A grid of images, each with its generated caption and (some of) its reference captions below.

    Args:
        images: PIL images or ``(H, W, 3)`` arrays.
        generated: One generated caption per image.
        references: Reference captions per image, if any.
        ncols: Images per row.
        max_references: References shown per image.
        width: Characters per line before the caption text wraps.
        axes: Axes to draw into (at least ``len(images)``); a new figure by default.

    Returns:
        ``(fig, axes)`` with ``axes`` a flat array, one per image (then unused ones, switched off).
    """
    if len(generated) != len(images) or (references is not None and len(references) != len(images)):
        raise ValueError("images, generated and references must have the same length")
    lines_per_panel = 2 + (max_references * 2 if references is not None else 0)
    fig, flat = _grid(len(images), ncols, axes, panel=(3.2, 3.0 + 0.22 * lines_per_panel))
    for i, image in enumerate(images):
        ax = flat[i]
        ax.imshow(np.asarray(image))
        ax.set_xticks([])
        ax.set_yticks([])
        text = textwrap.fill("gen: " + generated[i], width)
        if references is not None:
            for ref in list(references[i])[:max_references]:
                text += "\n" + textwrap.fill("ref: " + ref, width)
        ax.set_xlabel(text, fontsize=8, loc="left")
    if axes is None:
        fig.tight_layout()
    return fig, flat


def upsample_attention(attention: Any, size: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """Resize attention maps ``(tokens, h, w)`` (or one ``(h, w)`` map) to an image's ``(H, W)``.

    Each grid cell covers an equal ``H/h`` x ``W/w`` patch of the image. ``nearest`` repeats every cell's
    weight over its patch; ``bilinear`` interpolates between cell centres (``align_corners=False``), so a
    constant map stays constant and values stay within the map's range.

    Args:
        attention: Attention weights, numpy array or torch tensor.
        size: ``(H, W)`` of the image.
        mode: ``bilinear`` or ``nearest``.

    Returns:
        float32 array of shape ``(tokens, H, W)`` (or ``(H, W)`` for a single map).
    """
    import torch
    import torch.nn.functional as F

    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    maps = torch.as_tensor(np.asarray(attention, dtype=np.float32))
    single = maps.dim() == 2
    if single:
        maps = maps.unsqueeze(0)
    if maps.dim() != 3:
        raise ValueError(f"attention must be (tokens, h, w) or (h, w), got shape {tuple(maps.shape)}")
    if maps.shape[0] == 0:
        return np.zeros((0, *size), dtype=np.float32)
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    out = F.interpolate(maps.unsqueeze(1), size=tuple(size), mode=mode, **kwargs)[:, 0].numpy()
    return out[0] if single else out


def plot_attention(
    image: Any,
    words: Sequence[str],
    attention: Any | None,
    *,
    ncols: int = 5,
    mode: str = "bilinear",
    scale: str | float = "caption",
    alpha: float = 0.6,
    cmap: str = "jet",
    axes: Any = None,
) -> tuple[Any, np.ndarray]:
    """The image once per generated word, with that word's attention map upsampled over it.

    The first panel shows the image alone, titled with the weight a uniform attention would give each
    grid cell; the others are titled with the word and its largest weight. With ``attention`` None (a
    Show-and-Tell decoder has none) only the image is drawn, with a note.

    Args:
        image: PIL image or ``(H, W, 3)`` array, as the model sees it (see :class:`CaptionSamples`).
        words: The generated words, one per attention map.
        attention: ``(len(words), grid_h, grid_w)`` weights, or None.
        ncols: Panels per row.
        mode: Upsampling, ``bilinear`` or ``nearest`` (see :func:`upsample_attention`).
        scale: Colour scale of the heat maps, all from 0: ``caption`` (default) up to the largest weight
            of the whole caption, so words can be compared; ``word`` up to each word's own largest weight,
            to see where even a flat map peaks; or a number (e.g. 1.0) for a fixed scale.
        alpha: Opacity of the heat map.
        cmap: Colour map of the heat map.
        axes: Axes to draw into (at least ``len(words) + 1``); a new figure by default.

    Returns:
        ``(fig, axes)``, ``axes`` a flat array: the image, then one panel per word.
    """
    pixels = np.asarray(image)
    size = pixels.shape[:2]
    if attention is None:
        fig, flat = _grid(1, 1, axes, panel=(3.5, 3.5))
        flat[0].imshow(pixels)
        flat[0].set_axis_off()
        flat[0].set_title("no attention weights\n(this decoder does not attend)", fontsize=9)
        return fig, flat
    maps = np.asarray(attention, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] != len(words):
        raise ValueError(f"attention of shape {maps.shape} does not match {len(words)} words")
    if not (isinstance(scale, int | float) or scale in ("caption", "word")):
        raise ValueError(f"scale must be 'caption', 'word' or a number, got {scale!r}")
    heat = upsample_attention(maps, size, mode)
    fig, flat = _grid(len(words) + 1, ncols, axes, panel=(2.4, 2.6))
    flat[0].imshow(pixels)
    cells = maps.shape[1] * maps.shape[2]
    flat[0].set_title(f"{maps.shape[1]}x{maps.shape[2]} grid, uniform = {1 / cells:.2f}", fontsize=9)
    flat[0].set_axis_off()
    caption_max = float(maps.max()) if maps.size else 1.0
    for i, word in enumerate(words):
        ax = flat[i + 1]
        ax.imshow(pixels)
        if scale == "caption":
            vmax = caption_max
        elif scale == "word":
            vmax = float(maps[i].max())
        else:
            vmax = float(scale)
        ax.imshow(heat[i], cmap=cmap, alpha=alpha, vmin=0, vmax=vmax if vmax > 0 else 1.0)
        ax.set_title(f"{word}  (max {maps[i].max():.2f})", fontsize=9)
        ax.set_axis_off()
    if axes is None:
        fig.tight_layout()
    return fig, flat


def beam_size_sweep(
    checkpoint: str | Path,
    split: str = "test",
    beam_sizes: Sequence[int] = (1, 2, 3, 5),
    overrides: Sequence[str] = (),
    device: str = "auto",
    progress: bool = False,
) -> dict[int, dict[str, Any]]:
    """Evaluate a captioning checkpoint once per beam size (1 is greedy decoding).

    Args:
        checkpoint: A captioning ``best.pt`` / ``last.pt``.
        split: Dataset split to score.
        beam_sizes: The beam sizes to try.
        overrides: ``key=value`` config overrides (the beam size is set after them).
        device: ``auto``, ``cpu``, ``cuda``...
        progress: Show progress bars.

    Returns:
        Beam size -> the metrics of ``evaluate_checkpoint`` (BLEU-1..4, CIDEr-D, ROUGE-L).
    """
    from vision2seq.evaluate import evaluate_checkpoint

    return {
        int(b): evaluate_checkpoint(
            checkpoint,
            split,
            [*overrides, "generation.strategy=beam", f"generation.beam_size={int(b)}"],
            device=device,
            progress=progress,
        )
        for b in beam_sizes
    }


def plot_metric_vs_beam(
    results: Mapping[int, Mapping[str, float]],
    keys: Sequence[str] = ("bleu_4", "cider"),
    *,
    secondary: Sequence[str] = ("cider",),
    ax: Any = None,
) -> tuple[Any, Any]:
    """Metrics against beam size, e.g. from :func:`beam_size_sweep`.

    Args:
        results: Beam size -> metrics.
        keys: The metrics to draw.
        secondary: Those of ``keys`` drawn against a right-hand axis (CIDEr-D's scale is about ten times
            BLEU's).
        ax: Axes to draw into; a new figure by default.

    Returns:
        ``(fig, ax)``: the left-hand axes (the right-hand one, if any, is ``ax.right_ax``).
    """
    beams = sorted(results)
    if not beams:
        raise ValueError("no results to plot")
    fig, ax = _figure(ax, (6, 4))
    left = [k for k in keys if k not in secondary]
    right = [k for k in keys if k in secondary]
    colours = iter(f"C{i}" for i in range(10 * len(keys)))
    lines = []
    for k in left:
        lines += ax.plot(beams, [results[b][k] for b in beams], marker="o", color=next(colours), label=k)
    ax.set_xlabel("beam size")
    ax.set_xticks(beams)
    ax.set_ylabel(", ".join(left) if left else "")
    ax.grid(alpha=0.3)
    if right:
        other = ax.twinx() if left else ax
        for k in right:
            values = [results[b][k] for b in beams]
            lines += other.plot(beams, values, marker="s", linestyle="--", color=next(colours), label=k)
        other.set_ylabel(", ".join(right))
        ax.right_ax = other
    ax.legend(lines, [line.get_label() for line in lines], loc="best", fontsize=9)
    ax.set_title(" / ".join(keys) + " vs beam size")
    return fig, ax
