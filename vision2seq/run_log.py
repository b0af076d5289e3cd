"""Per-epoch metrics of a run: appended to ``metrics.csv``, and to TensorBoard when it is installed."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


def log_epoch(out: Path, row: dict[str, Any], writer: Any) -> None:
    """Append ``row`` to ``out/metrics.csv`` (new keys extend the header) and to ``writer`` if any."""
    path = out / "metrics.csv"
    fields = list(row)
    if path.exists():
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
        if header:
            fields = header + [k for k in row if k not in header]
    rewrite = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if rewrite:
            w.writeheader()
        w.writerow(row)
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
