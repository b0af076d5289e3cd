"""``vision2seq train``: set a task up from its config and hand it to the shared loop."""

from __future__ import annotations

from vision2seq.config import CaptioningConfig, ExperimentConfig
from vision2seq.engine import FitResult, fit, resolve_device, seed_everything


def train(config: ExperimentConfig, resume: bool = False, progress: bool = True) -> FitResult:
    """Train the experiment ``config`` describes; writes best.pt/last.pt/metrics.csv to its output_dir."""
    seed_everything(config.seed)
    if isinstance(config, CaptioningConfig):
        return _train_captioning(config, resume, progress)
    from vision2seq.tasks.video_classification import train_video

    return train_video(config, resume, progress)


def _train_captioning(config: CaptioningConfig, resume: bool, progress: bool) -> FitResult:
    from vision2seq.data.caption_datasets import build_caption_data
    from vision2seq.tasks.captioning import CaptioningTask, build_caption_model, build_encoder

    device = resolve_device(config.train.device)
    encoder = build_encoder(config)
    data = build_caption_data(config, encoder, device)
    # Building the feature cache may draw from the RNG; re-seed so the decoder's initial weights depend
    # only on the seed, whether or not the cache already existed.
    seed_everything(config.seed + 1)
    model = build_caption_model(config, len(data.vocab), encoder=encoder)
    task = CaptioningTask(config, data.vocab)
    return fit(task, model, data.train, data.val, config, resume=resume, progress=progress)
