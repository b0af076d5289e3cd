"""Classification metrics accumulated over batches: top-k accuracy, per-class scores, confusion matrix.

:class:`ClassificationEvaluator` takes class scores (logits or probabilities, any monotonic scale) and integer
targets, batch by batch, from numpy arrays or torch tensors; it never calls a model. Only counts are kept,
so memory does not grow with the number of samples and feeding the data in any batching gives the same
result.

Ties between scores are broken towards the lower class index, like ``argmax``: a sample counts as top-k
correct when fewer than k classes rank above its target class, where a class ranks above the target if its
score is higher, or equal with a lower index. So constant scores are not counted as correct for every
class, and top-1 always agrees with the confusion matrix.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ClassificationEvaluator"]


def _to_numpy(value: Any) -> np.ndarray:
    # torch tensors (possibly on a GPU, requiring grad, or in half precision, which numpy cannot hold as
    # bfloat16) without importing torch here
    if hasattr(value, "detach"):
        tensor = value.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float()
        return tensor.numpy()
    return np.asarray(value)


class ClassificationEvaluator:
    """Accumulates scores and targets over batches and computes classification metrics.

    Args:
        num_classes: Number of classes C; scores have shape (B, C).
        class_names: Optional names of the classes (length C), used in ``per_class`` and the CSV; defaults
            to the class indices as strings.
        topk: The k of the top-k accuracies to report (as ``top{k}``). A k larger than ``num_classes`` is
            left out of :meth:`compute` (it would be 1.0 by construction and misleading).

    Raises:
        ValueError: If ``num_classes`` < 1, ``class_names`` has the wrong length, or a k < 1.

    Example:
        >>> evaluator = ClassificationEvaluator(3, topk=(1, 2))
        >>> evaluator.update(np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1]]), np.array([2, 0]))
        >>> metrics = evaluator.compute()
        >>> metrics["top1"], metrics["top2"]
        (0.5, 1.0)
    """

    def __init__(
        self, num_classes: int, class_names: Sequence[str] | None = None, topk: Sequence[int] = (1, 5)
    ):
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
        if any(k < 1 for k in topk):
            raise ValueError(f"top-k values must be at least 1, got {tuple(topk)}")
        self.num_classes = num_classes
        self.class_names = (
            [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(num_classes)]
        )
        # Sorted and de-duplicated so the result keys come in a stable order.
        self.topk = tuple(sorted({int(k) for k in topk if k <= num_classes}))
        self._confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        self._topk_correct = dict.fromkeys(self.topk, 0)

    def reset(self) -> None:
        """Forget everything added so far."""
        self._confusion[:] = 0
        self._topk_correct = dict.fromkeys(self.topk, 0)

    @property
    def num_samples(self) -> int:
        """Number of samples added so far."""
        return int(self._confusion.sum())

    def update(self, scores: Any, targets: Any) -> None:
        """Add one batch.

        Args:
            scores: Class scores of shape (B, C), numpy array or torch tensor.
            targets: True class indices of shape (B,), integers in [0, C).

        Raises:
            ValueError: On a shape mismatch, non-integer or out-of-range targets, or non-finite scores.
        """
        scores_np = _to_numpy(scores).astype(np.float64, copy=False)
        targets_np = _to_numpy(targets)
        if scores_np.ndim != 2 or scores_np.shape[1] != self.num_classes:
            raise ValueError(f"scores must have shape (batch, {self.num_classes}), got {scores_np.shape}")
        if targets_np.shape != (scores_np.shape[0],):
            raise ValueError(f"targets must have shape ({scores_np.shape[0]},), got {targets_np.shape}")
        if targets_np.size == 0:
            return
        if not np.issubdtype(targets_np.dtype, np.integer):
            raise ValueError(f"targets must be integer class indices, got dtype {targets_np.dtype}")
        if targets_np.min() < 0 or targets_np.max() >= self.num_classes:
            raise ValueError(
                f"targets must lie in [0, {self.num_classes}), got values from {targets_np.min()} "
                f"to {targets_np.max()}"
            )
        if not np.isfinite(scores_np).all():
            raise ValueError("scores contain NaN or infinite values")

        targets_np = targets_np.astype(np.int64)
        rows = np.arange(len(targets_np))
        target_scores = scores_np[rows, targets_np][:, None]
        lower_index = np.arange(self.num_classes)[None, :] < targets_np[:, None]
        # Classes ranked above the target (see the module docstring for the tie rule).
        rank = ((scores_np > target_scores) | ((scores_np == target_scores) & lower_index)).sum(axis=1)
        for k in self.topk:
            self._topk_correct[k] += int((rank < k).sum())
        predictions = scores_np.argmax(axis=1)
        np.add.at(self._confusion, (targets_np, predictions), 1)

    def compute(self) -> dict:
        """Compute the metrics over everything added since the last :meth:`reset`.

        Returns:
            ``top{k}`` for each k of ``topk`` (up to ``num_classes``); ``mean_class_accuracy``: the mean
            recall over the classes that have samples; ``per_class``: one dict per class with ``class``
            (its name), ``accuracy`` (= recall), ``precision``, ``recall`` and ``support`` (number of
            samples); precision is 0.0 for a class never predicted and recall 0.0 for a class without
            samples; ``confusion_matrix``: rows are true classes, columns predicted ones.

        Raises:
            ValueError: If no samples were added.
        """
        total = self.num_samples
        if total == 0:
            raise ValueError("no samples to evaluate: call update() with at least one batch first")
        results: dict = {f"top{k}": self._topk_correct[k] / total for k in self.topk}
        support = self._confusion.sum(axis=1)
        predicted = self._confusion.sum(axis=0)
        correct = np.diag(self._confusion)
        recall = np.divide(correct, support, out=np.zeros(self.num_classes), where=support > 0)
        precision = np.divide(correct, predicted, out=np.zeros(self.num_classes), where=predicted > 0)
        results["mean_class_accuracy"] = float(recall[support > 0].mean())
        results["per_class"] = [
            {
                "class": name,
                "accuracy": float(recall[i]),
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(self.class_names)
        ]
        results["confusion_matrix"] = self._confusion.tolist()
        return results

    def save_confusion_csv(self, path: str | Path) -> None:
        """Write the confusion matrix as CSV (see `write_confusion_csv`)."""
        write_confusion_csv(path, self.class_names, self._confusion.tolist())


def write_confusion_csv(
    path: str | Path, class_names: Sequence[str], matrix: Sequence[Sequence[int]]
) -> None:
    """Write a confusion matrix as CSV: a header of predicted class names, one row per true class.

    Args:
        path: The CSV file to write (whole or not at all); its parent directory is created if needed.

    Raises:
        WriteError: the file could not be written (full disk, read-only folder); a previous one is kept.
        class_names: Names of the classes, in matrix order.
        matrix: Rows are true classes, columns predicted ones.
    """
    from vision2seq.files import atomic_write

    with atomic_write(path, "w", "write confusion matrix", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["true\\predicted", *class_names])
        for name, row in zip(class_names, matrix, strict=True):
            writer.writerow([name, *row])
