"""Per-epoch metrics of a run: appended to ``metrics.csv``, and to TensorBoard when it is installed."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from vision2seq.files import atomic_write


def log_epoch(out: Path, row: dict[str, Any], writer: Any) -> None:
    """Add ``row`` to ``out/metrics.csv`` and to ``writer`` if any.

    The file is rewritten whole (``files.atomic_write``; it holds one short line per epoch): a key
    first seen in a later epoch (validation scores with ``train.val_every`` > 1) extends the header of
    every row, so each column keeps its name, and a full disk keeps the previous file intact.
    """
    path = out / "metrics.csv"
    rows: list[dict[str, Any]] = []
    fields: list[str] = []
    if path.exists():
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = list(reader.fieldnames or [])
            rows = [dict(r) for r in reader]
    fields += [k for k in row if k not in fields]
    rows.append(row)
    with atomic_write(path, "w", "write metrics", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", restval="")
        w.writeheader()
        w.writerows(rows)
    if writer is not None:
        for key, value in row.items():
            if key != "epoch" and isinstance(value, int | float):
                writer.add_scalar(key, value, row["epoch"])


def tensorboard_writer(out: Path) -> Any:
    """A TensorBoard ``SummaryWriter`` under ``out/tensorboard``, or None without tensorboard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out / "tensorboard"))
