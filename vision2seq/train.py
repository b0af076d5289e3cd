"""``vision2seq train``: set a task up from its config and hand it to the shared loop.

Runs in one process, or in each process of a ``torchrun`` job (DistributedDataParallel; see
``vision2seq.distributed``).
"""

from __future__ import annotations

from vision2seq import distributed
from vision2seq.config import CaptioningConfig, ExperimentConfig
from vision2seq.engine import FitResult, fit, seed_everything


def train(config: ExperimentConfig, resume: bool = False, progress: bool = True) -> FitResult:
    """Train the experiment ``config`` describes; writes best.pt/last.pt/metrics.csv to its output_dir."""
    dist, device = distributed.setup(config.train.device)
    try:
        seed_everything(config.seed)
        if isinstance(config, CaptioningConfig):
            task, model, data = _captioning(config, device, dist)
        else:
            from vision2seq.tasks.video_classification import setup_video

            task, model, data = setup_video(config, device, dist)
        # Every rank starts from the same weights (built above from the seed); dropout differs per rank.
        seed_everything(config.seed + 1 + dist.rank)
        return fit(
            task,
            model,
            data.train,
            data.val,
            config,
            resume=resume,
            progress=progress,
            dist=dist,
            device=device,
        )
    finally:
        distributed.teardown()


def _captioning(config: CaptioningConfig, device, dist):
    from vision2seq.data.caption_datasets import build_caption_data
    from vision2seq.tasks.captioning import CaptioningTask, build_caption_model, build_encoder

    encoder = build_encoder(config)
    data = build_caption_data(config, encoder, device, dist=dist)
    # Building the feature cache may draw from the RNG; re-seed so the decoder's initial weights depend
    # only on the seed, whether or not the cache already existed.
    seed_everything(config.seed + 1)
    model = build_caption_model(config, len(data.vocab), encoder=encoder)
    return CaptioningTask(config, data.vocab), model, data
