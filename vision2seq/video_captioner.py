"""Video captioning from Python: ``VideoCaptioner.from_checkpoint(path).caption(clips)``, and
``load_captioner(path)``, which returns the image or the video captioner a checkpoint needs.

A checkpoint carries everything needed (weights, config, vocabulary); nothing is downloaded. Clips are
video files or folders of extracted frames, sampled as the checkpoint's evaluation samples them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from vision2seq.captioner import Captioner, CaptionResult, caption_in_batches
from vision2seq.config import VideoCaptioningConfig
from vision2seq.data.tokenizer import detokenize
from vision2seq.data.video_clips import VideoClipDataset
from vision2seq.data.video_datasets import VideoSample
from vision2seq.data.video_loaders import IndexedClips
from vision2seq.data.vocab import Vocabulary
from vision2seq.models.generation import with_settings
from vision2seq.models.video_captioner import VideoCaptionModel
from vision2seq.resources import ensure_threads
from vision2seq.tasks import CaptioningTask, VideoCaptioningTask, restore_checkpoint
from vision2seq.tasks.base import Restored

__all__ = ["CaptionResult", "VideoCaptioner", "find_inputs", "load_captioner"]


class VideoCaptioner:
    """A trained video-captioning model ready to caption clips."""

    def __init__(
        self,
        model: VideoCaptionModel,
        vocab: Vocabulary,
        config: VideoCaptioningConfig,
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
    ) -> VideoCaptioner:
        """Load a video-captioning checkpoint (``best.pt`` / ``last.pt``) safely; ``device``:
        auto/cpu/cuda; ``overrides``: ``key=value`` changes to its config (e.g. ``data.num_frames=16``)."""
        _, restored = restore_checkpoint(path, VideoCaptioningTask.name, overrides, device)
        return cls.from_restored(restored)

    @classmethod
    def from_restored(cls, restored: Restored) -> VideoCaptioner:
        return cls(restored.model, restored.task.vocab, restored.config, restored.device)

    def clips(self, paths: Sequence[str | Path]) -> VideoClipDataset:
        """``paths`` as the checkpoint's evaluation samples them: ``(T, 3, H, W)`` frames per clip."""
        d = self.config.data
        return VideoClipDataset(
            [VideoSample(Path(p), -1) for p in paths],
            d.num_frames,
            mode=d.sampling,
            stride=d.frame_stride,
            clip_transform=self.transform,
        )

    @torch.no_grad()
    def caption_frames(
        self,
        frames: torch.Tensor,
        *,
        beam_size: int | None = None,
        max_len: int | None = None,
        length_penalty: float | None = None,
        return_attention: bool = False,
    ) -> tuple[list[str], list[torch.Tensor] | None]:
        """Caption a batch of preprocessed clips ``(B, T, 3, H, W)``.

        Returns:
            The captions, and with ``return_attention`` each caption's attention over the frames,
            ``(tokens, T)`` (row ``i``: the weights used to predict token ``i``).
        """
        settings = with_settings(self.config.generation, beam_size, max_len, length_penalty)
        features = self.model.features({"frames": frames.to(self.device)})  # (B, T, D)
        result = self.model.generate(features, settings, return_attention)
        captions = [detokenize(self.vocab.decode(tokens)) for tokens in result.tokens]
        attention = [a.cpu() for a in result.attention] if result.attention is not None else None
        return captions, attention

    def caption(self, paths: Sequence[str | Path], **generation: Any) -> list[str]:
        """Captions of clips (video files or frame folders); a bad clip raises ``VideoDecodeError`` naming
        it. ``generation``: ``beam_size``, ``max_len``, ``length_penalty``."""
        clips = self.clips(paths)
        if not len(clips):
            return []
        frames = torch.stack([clips.load(i)[0] for i in range(len(clips))])
        return self.caption_frames(frames, **generation)[0]

    def caption_files(
        self,
        paths: Sequence[str | Path],
        *,
        batch_size: int = 8,
        num_workers: int = 2,
        progress: bool | None = None,
        **generation: Any,
    ) -> Iterator[CaptionResult]:
        """Caption many clips in batches, decoding in worker processes, in input order.

        Unreadable clips are yielded with ``error`` set (one line naming the file and the reason); the
        others are still captioned. ``attention`` (with ``return_attention=True``) is ``(tokens, T)``.
        """
        paths = [Path(p) for p in paths]
        dataset = IndexedClips(self.clips(paths))
        caption = functools.partial(self.caption_frames, **generation)
        yield from caption_in_batches(dataset, paths, caption, batch_size, num_workers, progress, self.device)


def load_captioner(
    path: str | Path, device: str = "auto", overrides: Sequence[str] = ()
) -> Captioner | VideoCaptioner:
    """The captioner a checkpoint needs: ``Captioner`` for images, ``VideoCaptioner`` for clips.

    Raises:
        CheckpointError: not a captioning checkpoint (the message names the command that uses it).
    """
    task, restored = restore_checkpoint(
        path, (CaptioningTask.name, VideoCaptioningTask.name), overrides, device
    )
    if task is VideoCaptioningTask:
        return VideoCaptioner.from_restored(restored)
    return Captioner(restored.model, restored.task.vocab, restored.config, restored.device)


def find_inputs(captioner: Captioner | VideoCaptioner, inputs: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Expand command-line inputs for ``captioner``: image files, folders and globs for images; video
    files, frame folders, folders of clips and globs for videos. Returns the paths and one error line
    per input that matched nothing."""
    if isinstance(captioner, VideoCaptioner):
        from vision2seq.classifier import find_videos

        return find_videos(list(inputs))
    from vision2seq.data.images import find_images

    return find_images(list(inputs))
