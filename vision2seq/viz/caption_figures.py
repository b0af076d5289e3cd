"""Plots of captioning results: :func:`caption_samples` (generated and reference captions with attention),
:func:`caption_grid`, :func:`plot_attention` (with :func:`upsample_attention`), and the beam-size sweep
:func:`beam_size_sweep` / :func:`plot_metric_vs_beam`."""

from __future__ import annotations

import copy
import random
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vision2seq.viz._figures import _grid

if TYPE_CHECKING:
    from PIL import Image

    from vision2seq.inference.captioner import Captioner

__all__ = [
    "CaptionSamples",
    "beam_size_sweep",
    "caption_grid",
    "caption_samples",
    "caption_words",
    "model_view",
    "plot_attention",
    "plot_metric_vs_beam",
    "upsample_attention",
]


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
    """``image`` made square as the captioner's preprocessing does (squash, pad or crop; not normalised)."""
    return captioner.model.encoder.preprocessing.geometry()(image.convert("RGB"))


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

    from vision2seq.data.caption_datasets import prepare_records
    from vision2seq.data.images import load_image
    from vision2seq.inference.captioner import Captioner

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
    axes: Any = None,
) -> tuple[Any, np.ndarray]:
    """Metrics against beam size, e.g. from :func:`beam_size_sweep`: one panel per metric.

    Each panel's y-axis starts at 0 and every point is labelled with its value, so a difference looks as
    large as it is (two y-axes on one panel, scaled independently, made small differences look large).

    Args:
        results: Beam size -> metrics.
        keys: The metrics to draw, one panel each.
        axes: Axes to draw into (at least one per key); a new figure by default.

    Returns:
        ``(fig, axes)``: the panels, in the order of ``keys``.
    """
    beams = sorted(results)
    if not beams:
        raise ValueError("no results to plot")
    fig, flat = _grid(len(keys), len(keys), axes, panel=(3.6, 3.2))
    for i, (key, ax) in enumerate(zip(keys, flat, strict=False)):
        values = [results[b][key] for b in beams]
        ax.plot(beams, values, marker="o", color=f"C{i}", label=key)
        for beam, value in zip(beams, values, strict=True):
            ax.annotate(
                f"{value:.3f}",
                (beam, value),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
            )
        ax.set_ylim(0, max(values) * 1.15 if max(values) > 0 else 1)
        ax.set_xticks(beams)
        ax.set_xlabel("beam size")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    if axes is None:
        fig.tight_layout()
    return fig, flat[: len(keys)]
