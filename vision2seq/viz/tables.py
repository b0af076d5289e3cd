"""Tables of evaluation results: :class:`Table` (HTML in notebooks, aligned text with ``print``, or
Markdown), built by :func:`metrics_table`, :func:`compare_table` and :func:`per_class_table`."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Table", "compare_table", "metrics_table", "per_class_table"]


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
