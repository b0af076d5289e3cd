"""The one inference path: a restored task's ``predict_step`` over batches of files, in input order.

``Captioner``, ``VideoCaptioner`` and ``VideoClassifier`` are thin entry points over a ``Predictor``: they
say how a file becomes an input tensor and how one item's prediction becomes a result; batching, worker
decoding, the progress bar, the order of results and the one-line error of an unreadable file are here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from vision2seq.data.images import collate_good
from vision2seq.resources import ensure_threads, worker_count
from vision2seq.tasks.base import Task

R = TypeVar("R")


class Predictor:
    """A task (its config, vocabulary or class names) and its model on ``device``, in eval mode."""

    def __init__(self, task: Task, model: nn.Module, device: torch.device | str) -> None:
        ensure_threads()  # the CLI's automatic thread count, unless the user chose one
        self.task, self.device = task, torch.device(device)
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def predict(self, batch: Mapping[str, Any], **options: Any) -> Any:
        """``task.predict_step`` on ``batch`` (moved to the device); ``options`` go to the step."""
        moved = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return self.task.predict_step(self.model, moved, **options)

    def predict_files(
        self,
        dataset: Dataset,
        paths: Sequence[Path],
        make_batch: Callable[[torch.Tensor], Mapping[str, Any]],
        *,
        split: Callable[[Any], Sequence[Any]],
        result: Callable[[str, Any], R],
        failed: Callable[[str, str], R],
        batch_size: int,
        num_workers: int,
        progress: bool | None,
        desc: str,
        **options: Any,
    ) -> Iterator[R]:
        """Decode ``dataset`` (items ``(index, input tensor)``, or ``(index, error line)`` for an unreadable
        file) in worker processes, predict batch by batch (``make_batch``: the stacked inputs -> the
        step's batch) and yield one result per path, in input order; a bad file never stops the others.

        ``split``: one batch's predictions -> one prediction per item, in batch order; ``result``:
        ``(path, item prediction)`` -> the entry point's result; ``failed``: ``(path, error line)`` -> the
        result of a file that could not be read; ``options`` go to ``predict_step``."""
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=min(worker_count(num_workers), len(paths) // max(1, batch_size)),
            collate_fn=collate_good,
            pin_memory=self.device.type == "cuda",
        )
        show = progress if progress is not None else len(paths) > batch_size
        with tqdm(total=len(paths), desc=desc, disable=None if show else True, file=sys.stderr) as bar:
            for indices, inputs, errors in loader:
                results: dict[int, R] = {i: failed(str(paths[i]), message) for i, message in errors}
                if inputs is not None:
                    with torch.no_grad():  # make_batch may run the encoder (clip classification)
                        items = split(self.predict(make_batch(inputs), **options))
                    for i, item in zip(indices.tolist(), items, strict=True):
                        results[i] = result(str(paths[i]), item)
                bar.update(len(results))
                yield from (results[i] for i in sorted(results))
