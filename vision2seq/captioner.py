"""Captioning from Python: ``Captioner.from_checkpoint(path).caption(images)``.

A checkpoint carries everything needed (weights, config, vocabulary); nothing is downloaded.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader
from tqdm import tqdm

from vision2seq.config import CaptioningConfig, with_overrides
from vision2seq.data.images import ImageFiles, collate_good, load_image
from vision2seq.data.tokenizer import detokenize
from vision2seq.data.vocab import Vocabulary
from vision2seq.models.captioner import CaptionModel
from vision2seq.models.generation import with_settings
from vision2seq.resources import ensure_threads, worker_count
from vision2seq.tasks import CaptioningTask, restore_checkpoint


@dataclass
class CaptionResult:
    """The caption of one file, or the one-line reason it could not be captioned."""

    file: str
    caption: str | None = None
    error: str | None = None
    attention: torch.Tensor | None = None
    """``(tokens, grid_h, grid_w)`` attention weights when requested from an attention decoder."""


class Captioner:
    """A trained captioning model ready to caption images."""

    def __init__(
        self,
        model: CaptionModel,
        vocab: Vocabulary,
        config: CaptioningConfig,
        device: torch.device | str = "cpu",
    ) -> None:
        ensure_threads()  # the CLI's automatic thread count, unless the user chose one
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.vocab, self.config = vocab, config
        self.transform = model.encoder.preprocessing.transform()

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str = "auto", overrides: Sequence[str] = ()
    ) -> Captioner:
        """Load a captioning checkpoint (``best.pt`` / ``last.pt``) safely; ``device``: auto/cpu/cuda;
        ``overrides``: ``key=value`` changes to its config (e.g. ``generation.beam_size=5``)."""
        _, restored = restore_checkpoint(path, CaptioningTask.name, overrides, device)
        return cls(restored.model, restored.task.vocab, restored.config, restored.device)

    def with_overrides(self, overrides: Sequence[str]) -> CaptioningConfig:
        """The checkpoint's config with ``key=value`` overrides applied (e.g. new data paths)."""
        return with_overrides(self.config, list(overrides), "checkpoint config")  # type: ignore[return-value]

    @torch.no_grad()
    def caption_tensors(
        self,
        images: torch.Tensor,
        *,
        beam_size: int | None = None,
        max_len: int | None = None,
        length_penalty: float | None = None,
        return_attention: bool = False,
    ) -> tuple[list[str], list[torch.Tensor] | None]:
        """Caption a batch of preprocessed images ``(B, 3, H, W)``."""
        settings = with_settings(self.config.generation, beam_size, max_len, length_penalty)
        features = self.model.features({"images": images.to(self.device)})
        result = self.model.generate(features, settings, return_attention)
        captions = [detokenize(self.vocab.decode(tokens)) for tokens in result.tokens]
        attention = None
        if return_attention and result.attention is not None:
            h, w = self.model.encoder.grid_size
            attention = [
                a.reshape(a.shape[0], h, w).cpu() if a.shape[-1] == h * w else a.cpu()
                for a in result.attention
            ]
        return captions, attention

    def caption(self, images: Sequence[str | Path | Image.Image], **generation) -> list[str]:
        """Captions of image files or PIL images; a bad file raises ``ImageReadError`` naming it."""
        pixels = [
            self.transform(load_image(im) if not isinstance(im, Image.Image) else im.convert("RGB"))
            for im in images
        ]
        if not pixels:
            return []
        return self.caption_tensors(torch.stack(pixels), **generation)[0]

    def caption_files(
        self,
        paths: Sequence[str | Path],
        *,
        batch_size: int = 32,
        num_workers: int = 2,
        progress: bool | None = None,
        **generation,
    ) -> Iterator[CaptionResult]:
        """Caption many files in batches, decoding in worker processes, in input order.

        Unreadable files are yielded with ``error`` set (one line naming the file and the reason); the
        others are still captioned.
        """
        paths = [Path(p) for p in paths]
        dataset = ImageFiles(paths, self.transform)
        caption = functools.partial(self.caption_tensors, **generation)
        yield from caption_in_batches(dataset, paths, caption, batch_size, num_workers, progress, self.device)


def caption_in_batches(
    dataset: Any,
    paths: list[Path],
    caption: Callable[[torch.Tensor], tuple[list[str], list[torch.Tensor] | None]],
    batch_size: int,
    num_workers: int,
    progress: bool | None,
    device: torch.device,
) -> Iterator[CaptionResult]:
    """Decode ``dataset`` (items: an input tensor, or the one-line reason it could not be read) in worker
    processes, ``caption`` it batch by batch, and yield one result per path in input order."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=min(worker_count(num_workers), len(paths) // batch_size),
        collate_fn=collate_good,
        pin_memory=device.type == "cuda",
    )
    show = progress if progress is not None else len(paths) > batch_size
    bar = tqdm(total=len(paths), desc="captioning", disable=None if show else True, file=sys.stderr)
    for indices, inputs, errors in loader:
        results: dict[int, CaptionResult] = {i: CaptionResult(str(paths[i]), error=e) for i, e in errors}
        if inputs is not None:
            captions, attention = caption(inputs)
            for n, (i, text) in enumerate(zip(indices.tolist(), captions, strict=True)):
                results[i] = CaptionResult(str(paths[i]), text, None, attention[n] if attention else None)
        bar.update(len(results))
        yield from (results[i] for i in sorted(results))
    bar.close()
