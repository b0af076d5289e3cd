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

from vision2seq.viz._figures import has_matplotlib
from vision2seq.viz.caption_figures import (
    CaptionSamples,
    beam_size_sweep,
    caption_grid,
    caption_samples,
    caption_words,
    model_view,
    plot_attention,
    plot_metric_vs_beam,
    upsample_attention,
)
from vision2seq.viz.tables import Table, compare_table, metrics_table, per_class_table
from vision2seq.viz.video import (
    plot_confusion_matrix,
    plot_per_class_accuracy,
    plot_stream,
    save_confusion_matrix,
)

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
