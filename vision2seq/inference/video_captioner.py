"""Video captioning from Python: ``VideoCaptioner.from_checkpoint(path).caption(clips)``, and
``load_captioner(path)``, which returns the image or the video captioner a checkpoint needs.

A checkpoint carries everything needed (weights, config, vocabulary); nothing is downloaded. Clips are
video files or folders of extracted frames, sampled as the checkpoint's evaluation samples them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from vision2seq.data.video.clips import VideoClipDataset, configured_clips
from vision2seq.data.video.datasets import VideoSample
from vision2seq.data.video.loaders import IndexedClips
from vision2seq.inference.captioner import Captioner, CaptionResult
from vision2seq.tasks import restore_checkpoint
from vision2seq.tasks.video_captioning import VideoCaptioningTask

__all__ = ["CaptionResult", "VideoCaptioner", "find_inputs", "load_captioner"]


class VideoCaptioner(Captioner):
    """A trained video-captioning model ready to caption clips (``from_checkpoint``'s ``overrides``,
    e.g. ``data.num_frames=16``)."""

    task_class = VideoCaptioningTask
    input_name = "frames"

    @staticmethod
    def find_inputs(inputs: Sequence[str]) -> tuple[list[Path], list[str]]:
        """Expand command-line inputs (video files, frame folders, folders of clips, globs): the paths and
        one error line per input that matched nothing."""
        from vision2seq.inference.classifier import find_videos

        return find_videos(list(inputs))

    def clips(self, paths: Sequence[str | Path]) -> VideoClipDataset:
        """``paths`` as the checkpoint's evaluation samples them: ``(T, 3, H, W)`` frames per clip."""
        return configured_clips(self.config.data, [VideoSample(Path(p), -1) for p in paths], self.transform)

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
        return self.caption_tensors(
            frames,
            beam_size=beam_size,
            max_len=max_len,
            length_penalty=length_penalty,
            return_attention=return_attention,
        )

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
        return super().caption_files(
            paths, batch_size=batch_size, num_workers=num_workers, progress=progress, **generation
        )

    def _dataset(self, paths: list[Path]) -> torch.utils.data.Dataset:
        return IndexedClips(self.clips(paths))


CAPTIONERS: dict[str, type[Captioner]] = {c.task_class.name: c for c in (Captioner, VideoCaptioner)}
"""The captioner of each captioning task."""


def load_captioner(
    path: str | Path, device: str = "auto", overrides: Sequence[str] = ()
) -> Captioner | VideoCaptioner:
    """The captioner a checkpoint needs: ``Captioner`` for images, ``VideoCaptioner`` for clips.

    Raises:
        CheckpointError: not a captioning checkpoint (the message names the command that uses it).
    """
    task, restored = restore_checkpoint(path, tuple(CAPTIONERS), overrides, device)
    return CAPTIONERS[task.name].from_restored(restored)


def find_inputs(captioner: Captioner | VideoCaptioner, inputs: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Expand command-line inputs for ``captioner``: image files, folders and globs for images; video
    files, frame folders, folders of clips and globs for videos. Returns the paths and one error line
    per input that matched nothing."""
    return captioner.find_inputs(inputs)
