"""Captioning from Python: ``Captioner.from_checkpoint(path).caption(images)``.

A checkpoint carries everything needed (weights, config, vocabulary); nothing is downloaded. Captions
come from the task's ``predict_step`` through the shared ``inference.predictor.Predictor``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from vision2seq.config import CaptioningConfig, with_overrides
from vision2seq.data.images import ImageFiles, find_images, load_image
from vision2seq.data.vocab import Vocabulary
from vision2seq.inference.predictor import Predictor
from vision2seq.models.caption_model import CaptionModel
from vision2seq.models.generation import with_settings
from vision2seq.tasks import CaptioningTask, restore_checkpoint
from vision2seq.tasks.base import Restored
from vision2seq.tasks.captioning import Captions


@dataclass
class CaptionResult:
    """The caption of one file, or the one-line reason it could not be captioned."""

    file: str
    caption: str | None = None
    error: str | None = None
    attention: torch.Tensor | None = None
    """``(tokens, grid_h, grid_w)`` attention weights when requested from an attention decoder
    (``(tokens, T)`` over a clip's frames from a ``VideoCaptioner``)."""


class Captioner:
    """A trained captioning model ready to caption images."""

    task_class: type[CaptioningTask] = CaptioningTask
    """The task whose checkpoints it opens."""
    input_name = "images"
    """The batch entry of its preprocessed inputs."""

    def __init__(
        self,
        model: CaptionModel,
        vocab: Vocabulary,
        config: CaptioningConfig,
        device: torch.device | str = "cpu",
    ) -> None:
        self.predictor = Predictor(self.task_class(config, vocab), model, device)
        self.device, self.model = self.predictor.device, self.predictor.model
        self.vocab, self.config = vocab, config
        self.transform = model.encoder.preprocessing.transform()

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str = "auto", overrides: Sequence[str] = ()
    ) -> Captioner:
        """Load a checkpoint of its task (``best.pt`` / ``last.pt``) safely; ``device``: auto/cpu/cuda;
        ``overrides``: ``key=value`` changes to its config (e.g. ``generation.beam_size=5``)."""
        _, restored = restore_checkpoint(path, cls.task_class.name, overrides, device)
        return cls.from_restored(restored)

    @classmethod
    def from_restored(cls, restored: Restored) -> Captioner:
        """The captioner of a restored checkpoint (``tasks.restore_checkpoint``)."""
        return cls(restored.model, restored.task.vocab, restored.config, restored.device)

    def with_overrides(self, overrides: Sequence[str]) -> CaptioningConfig:
        """The checkpoint's config with ``key=value`` overrides applied (e.g. new data paths)."""
        return with_overrides(self.config, list(overrides), "checkpoint config")  # type: ignore[return-value]

    @staticmethod
    def find_inputs(inputs: Sequence[str]) -> tuple[list[Path], list[str]]:
        """Expand command-line inputs (image files, folders, globs): the paths and one error line per
        input that matched nothing."""
        return find_images(list(inputs))

    def _options(
        self,
        beam_size: int | None = None,
        max_len: int | None = None,
        length_penalty: float | None = None,
        return_attention: bool = False,
    ) -> dict:
        settings = with_settings(self.config.generation, beam_size, max_len, length_penalty)
        return {"settings": settings, "return_attention": return_attention}

    def caption_tensors(
        self,
        images: torch.Tensor,
        *,
        beam_size: int | None = None,
        max_len: int | None = None,
        length_penalty: float | None = None,
        return_attention: bool = False,
    ) -> tuple[list[str], list[torch.Tensor] | None]:
        """Caption a batch of preprocessed images ``(B, 3, H, W)``; with ``return_attention``, each
        caption's ``(tokens, grid_h, grid_w)`` attention maps."""
        options = self._options(beam_size, max_len, length_penalty, return_attention)
        out = self.predictor.predict({self.input_name: images}, **options)
        return out.captions, out.attention

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
        yield from self.predictor.predict_files(
            self._dataset(paths),
            paths,
            lambda inputs: {self.input_name: inputs},
            split=Captions.items,
            result=lambda file, item: CaptionResult(file, item[0], None, item[1]),
            failed=lambda file, message: CaptionResult(file, error=message),
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
            desc="captioning",
            **self._options(**generation),
        )

    def _dataset(self, paths: list[Path]) -> torch.utils.data.Dataset:
        """``(index, input tensor)`` or ``(index, error line)`` per path."""
        return ImageFiles(paths, self.transform)
