"""``vision2seq train``: build the task a config names and hand it to the shared loop.

Runs in one process, or in each process of a ``torchrun`` job (DistributedDataParallel; see
``vision2seq.distributed``).
"""

from __future__ import annotations

from vision2seq import distributed
from vision2seq.config import ExperimentConfig
from vision2seq.engine import FitResult, fit, seed_everything
from vision2seq.run_dir import claim_output_dir
from vision2seq.tasks import TASKS


def train(config: ExperimentConfig, resume: bool = False, progress: bool = True) -> FitResult:
    """Train the experiment ``config`` describes; writes best.pt/last.pt/metrics.csv to its output_dir."""
    dist, device = distributed.setup(config.train.device)
    resume = resume or config.train.resume
    try:
        # Claimed before the data is set up, so a locked or unwritable output_dir is refused before a
        # feature cache is built; fit's own claim of the same folder is then a no-op.
        with claim_output_dir(config.output_dir, resume, config.train.overwrite, lock=dist.is_main):
            seed_everything(config.seed)
            built = TASKS[config.task].build(config, device, dist)
            # Every rank starts from the same weights (built above from the seed); dropout differs per rank.
            seed_everything(config.seed + 1 + dist.rank)
            return fit(
                built.task,
                built.model,
                built.train,
                built.val,
                config,
                resume=resume,
                progress=progress,
                dist=dist,
                device=device,
            )
    finally:
        distributed.teardown()
