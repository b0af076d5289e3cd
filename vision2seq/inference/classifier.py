"""Video classification from Python: ``VideoClassifier.from_checkpoint(path).classify(paths)``, and
frame-by-frame streaming with ``classifier.stream()``.

A checkpoint carries everything needed (weights, config, class names); nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vision2seq.config import VideoConfig, with_overrides
from vision2seq.data.inputs import VIDEO_SUFFIXES, find_inputs
from vision2seq.data.video.clips import configured_clips, frames_to_clip
from vision2seq.data.video.datasets import VideoSample
from vision2seq.data.video.loaders import IndexedClips
from vision2seq.data.video.reader import iter_frames
from vision2seq.inference.predictor import Predictor
from vision2seq.models.clip_classifier import VideoModel
from vision2seq.tasks import restore_checkpoint
from vision2seq.tasks.video_classification import VideoClassificationTask

# Frames the encoder sees per forward pass in `VideoClassifier.classify`.
ENCODE_CHUNK = 16


@dataclass
class VideoPrediction:
    """Top labels of one video (best first), or the one-line reason it could not be classified."""

    file: str
    labels: list[tuple[str, float]]
    error: str | None = None


@dataclass
class StreamUpdate:
    """The running prediction after one more frame of a stream."""

    frame: int
    time_s: float
    labels: list[tuple[str, float]]
    probs: torch.Tensor


class VideoStream:
    """Feed frames one at a time (or in chunks); get class probabilities after every frame.

    The LSTM state is kept between calls; ``reset()`` starts a new stream. After the last frame the
    probabilities equal ``classify_frames`` on the same frames.
    """

    def __init__(self, classifier: VideoClassifier) -> None:
        self.classifier = classifier
        self.reset()

    def reset(self) -> None:
        self.state = self.classifier.model.classifier.init_stream()

    @torch.no_grad()
    def push(self, frames: Image.Image | np.ndarray | Sequence[Image.Image | np.ndarray]) -> torch.Tensor:
        """Add one frame (PIL image or HxWx3 uint8 array) or a list of them; return ``(C,)`` probabilities."""
        batch = self.classifier.preprocess(frames if isinstance(frames, list | tuple) else [frames])
        features = self.classifier.model.encode_frames(batch.unsqueeze(0))  # (1, t, D)
        logits, self.state = self.classifier.model.classifier.stream_step(features, self.state)
        return logits[0].float().softmax(dim=-1).cpu()


class VideoClassifier:
    """A trained clip classifier ready to classify video files or frame folders."""

    def __init__(
        self,
        model: VideoModel,
        class_names: list[str],
        config: VideoConfig,
        device: torch.device | str = "cpu",
    ) -> None:
        self.predictor = Predictor(VideoClassificationTask(config, class_names), model, device)
        self.task, self.device, self.model = self.predictor.task, self.predictor.device, self.predictor.model
        self.class_names, self.config = class_names, config
        self.transform = model.encoder.preprocessing.transform()

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str = "auto", overrides: Sequence[str] = ()
    ) -> VideoClassifier:
        """Load a video-classification checkpoint safely; ``device``: auto/cpu/cuda; ``overrides``:
        ``key=value`` changes to its config (e.g. ``data.test_clips=3``)."""
        _, restored = restore_checkpoint(path, VideoClassificationTask.name, overrides, device)
        return cls(restored.model, restored.task.class_names, restored.config, restored.device)

    def with_overrides(self, overrides: Sequence[str]) -> VideoConfig:
        """The checkpoint's config with ``key=value`` overrides applied (e.g. new data paths)."""
        return with_overrides(self.config, list(overrides), "checkpoint config")  # type: ignore[return-value]

    def preprocess(self, frames: Sequence[Image.Image | np.ndarray]) -> torch.Tensor:
        """Frames -> ``(T, 3, H, W)`` normalised tensor on the model's device.

        The same conversion as training and `classify` (`vision2seq.data.video.clips.frames_to_clip`:
        the weights' transform on uint8 tensors), so streamed frames get the same pixels.
        """
        arrays = [np.asarray(f.convert("RGB")) if isinstance(f, Image.Image) else f for f in frames]
        return frames_to_clip(arrays, self.transform).to(self.device)

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``(..., 3, H, W)`` frames -> ``(..., D)`` features, ``ENCODE_CHUNK`` frames at a time.

        The chunks bound the encoder's activations, which dominate memory when a batch holds several
        clips of several test clips each.
        """
        flat = frames.flatten(0, -4)
        features = torch.cat([self.model.encoder(c.to(self.device)) for c in flat.split(ENCODE_CHUNK)])
        return features.reshape(*frames.shape[:-3], features.shape[-1])

    def top_labels(self, probs: torch.Tensor, k: int = 5) -> list[tuple[str, float]]:
        scores, indices = probs.topk(min(k, probs.numel()))
        return [
            (self.class_names[i], float(s)) for s, i in zip(scores.tolist(), indices.tolist(), strict=True)
        ]

    @torch.no_grad()
    def classify_frames(self, frames: Sequence[Image.Image | np.ndarray]) -> torch.Tensor:
        """``(C,)`` probabilities of one clip made of exactly these frames."""
        features = self.model.encode_frames(self.preprocess(frames).unsqueeze(0))
        return self.model.logits(features)[0].float().softmax(dim=-1).cpu()

    @torch.no_grad()
    def classify(
        self,
        paths: Sequence[str | Path],
        *,
        top_k: int = 5,
        batch_size: int = 8,
        num_workers: int = 2,
        progress: bool | None = None,
    ) -> list[VideoPrediction]:
        """Classify video files / frame folders with the checkpoint's sampling (and test-time clips).

        Frames are sampled exactly as evaluation samples them (`vision2seq.data.sampling.ClipSampling`),
        only the sampled frames are decoded, and the encoder runs ``ENCODE_CHUNK`` frames at a time,
        so memory is bounded by ``batch_size`` clips of frames, not by the videos' length.
        Unreadable videos come back with ``error`` set (one line naming the file and the reason).
        """
        d = self.config.data
        paths = [Path(p) for p in paths]
        samples = [VideoSample(p, -1) for p in paths]
        clips = configured_clips(d, samples, self.transform, num_clips=d.test_clips)
        return list(
            self.predictor.predict_files(
                IndexedClips(clips),
                paths,
                lambda frames: {"features": self._encode(frames)},  # (B, [N,] T, D)
                split=lambda out: out["video_probs"].cpu(),
                result=lambda file, probs: VideoPrediction(file, self.top_labels(probs, top_k)),
                failed=lambda file, message: VideoPrediction(file, [], message),
                batch_size=batch_size,
                num_workers=num_workers,
                progress=progress,
                desc="classifying",
            )
        )

    def stream(self) -> VideoStream:
        return VideoStream(self)

    def stream_file(self, path: str | Path, *, frame_step: int = 1, top_k: int = 5) -> Iterator[StreamUpdate]:
        """Decode ``path`` frame by frame and yield the running prediction after each fed frame."""
        stream = self.stream()
        for index, time_s, frame in iter_frames(path, step=frame_step):
            probs = stream.push(frame)
            yield StreamUpdate(index, time_s, self.top_labels(probs, top_k), probs)


def find_videos(inputs: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Expand files, folders of videos (or of frame folders) and glob patterns into video paths.

    A folder directly holding images is one video (its frames). See
    `vision2seq.data.inputs.find_inputs` for the error lines.
    """
    return find_inputs(inputs, VIDEO_SUFFIXES, frame_folders=True, what="video files")
