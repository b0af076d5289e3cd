"""Per-dimension standardisation of encoder features with statistics of the training set, kept in the model.

CNN features are all-positive (post-ReLU pooling) and dominated by a per-dimension offset: across the images
of a dataset each dimension moves little around a large mean, the same for random-init and ImageNet
weights. A decoder fed those raw vectors sees nearly the same input for every image and learns the
caption prior instead of the picture. Subtracting the training set's per-dimension mean and dividing by its
standard deviation turns the small differences between images into unit-scale signals.

The statistics are buffers of ``FeatureNorm``, a module inside the model, so they travel in the checkpoint's
state dict and every path that reads features through the model (training, evaluation, captioning,
classification, streaming) applies the same transform. Cached features stay raw, so one cache serves runs
with and without normalisation.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

_EPS = 1e-5
"""Added to the standard deviation: dimensions that never vary (dead ReLU channels) are left at zero."""

DEFAULT_MAX_ITEMS = 2048
"""Dataset items (images, or clips) read to estimate the statistics when nothing bounds them otherwise."""


class FeatureNorm(nn.Module):
    """``(features - mean) / (std + eps)`` over the last dimension; identity until statistics are set.

    ``std`` is the scale each dimension is divided by: ``fit_feature_norm`` stores the standard deviation
    with a floor (``floored``); checkpoints written before the floor keep the plain deviation they were
    trained with.

    Args:
        dim: Feature size ``D``.
        enabled: False makes the module an identity that stores nothing (``model.feature_norm: none``).
    """

    def __init__(self, dim: int, enabled: bool = True) -> None:
        super().__init__()
        self.dim, self.enabled = dim, enabled
        if enabled:
            self.register_buffer("mean", torch.zeros(dim))
            self.register_buffer("std", torch.ones(dim))

    def forward(self, features: Tensor) -> Tensor:
        """Features ``(..., D)`` (pooled, grid or per frame) -> the same shape, standardised."""
        if not self.enabled:
            return features
        return (features - self.mean.to(features.dtype)) / (self.std.to(features.dtype) + _EPS)

    @torch.no_grad()
    def set_statistics(self, mean: Tensor, std: Tensor) -> None:
        if self.enabled:
            self.mean.copy_(mean)
            self.std.copy_(std)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[override]
        # Checkpoints written before normalisation existed carry no statistics: load them as the identity
        # they were trained with, instead of refusing them as "weights do not match".
        if self.enabled and f"{prefix}mean" not in state_dict and f"{prefix}std" not in state_dict:
            state_dict = dict(state_dict)
            state_dict[f"{prefix}mean"] = torch.zeros(self.dim)
            state_dict[f"{prefix}std"] = torch.ones(self.dim)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, enabled={self.enabled}"


class RunningMoments:
    """Mean and standard deviation per dimension, accumulated in float64 over batches of any shape."""

    def __init__(self) -> None:
        self.count = 0
        self.total: Tensor | None = None
        self.squares: Tensor | None = None

    def update(self, features: Tensor) -> None:
        rows = features.detach().reshape(-1, features.shape[-1]).double().cpu()  # (rows, D)
        self.count += rows.shape[0]
        self.total = rows.sum(0) if self.total is None else self.total + rows.sum(0)
        squares = (rows * rows).sum(0)
        self.squares = squares if self.squares is None else self.squares + squares

    def compute(self) -> tuple[Tensor, Tensor]:
        if self.total is None or self.squares is None or self.count == 0:
            raise ValueError("no features seen")
        mean = self.total / self.count
        var = (self.squares / self.count - mean * mean).clamp_min(0.0)
        return mean.float(), var.sqrt().float()


def floored(std: Tensor) -> Tensor:
    """The scale each dimension is divided by: its standard deviation plus the median one over dimensions,
    rescaled so the standardised features keep unit variance on average over their varying dimensions.

    A pretrained network's pooled features hold many near-dead units (EfficientNet-Lite0 on generated
    scenes: a quarter of its 1,280 dimensions vary 4x less than the median one, a tenth 20x less).
    Divided by their own tiny deviation they become unit-scale signals made of rare spikes, as loud as the
    dimensions that describe the image, and a decoder fits the training images by them. The floor keeps
    them near zero relative to the others; the rescaling keeps the features as large overall as plain
    standardisation makes them (smaller inputs slowed short runs down). Where most dimensions are
    constant (median 0) it is plain standardisation.
    """
    scale = std + std.median()
    varying = std > 0
    if not varying.any():
        return scale
    energy = (std[varying] / scale[varying]).pow(2).mean().sqrt()  # RMS of the standardised deviations
    return scale * energy


@torch.no_grad()
def fit_feature_norm(
    norm: FeatureNorm,
    dataset: Any,
    collate: Callable[[list[Any]], Mapping[str, Any]],
    raw_features: Callable[[Mapping[str, Any]], Tensor],
    seed: int,
    max_items: int = DEFAULT_MAX_ITEMS,
    batch_size: int = 64,
) -> int:
    """Set ``norm``'s statistics from up to ``max_items`` items of a training ``dataset``.

    The items are a seeded random subset read straight from the dataset (not through a sharded loader), so
    every process of a distributed run computes the same statistics.

    Args:
        norm: The module to fill (nothing happens when it is disabled).
        dataset: Training items, indexable; unreadable items (error strings) are skipped.
        collate: Turns a list of items into a batch.
        raw_features: The encoder's raw features of a batch (cached ``features``, or the encoder run on
            its images / frames), ``(..., D)``.
        seed: Chooses the subset.
        max_items: Bound on the items read (a pass of the encoder costs this many forward passes).
        batch_size: Items per batch.

    Returns:
        The number of items the statistics were computed from.
    """
    if not norm.enabled:
        return 0
    n = len(dataset)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: min(n, max_items)].tolist()
    moments, used = RunningMoments(), 0
    starts = list(range(0, len(order), batch_size))
    if len(starts) > 1 and len(order) - starts[-1] == 1:
        starts.pop()  # a lone last item joins the batch before it: batch norm cannot take one image
    for start, end in zip(starts, [*starts[1:], len(order)], strict=True):
        items = [dataset[i] for i in order[start:end]]
        batch = dict(collate(items))
        batch.pop("errors", None)
        if not batch:
            continue
        features = raw_features(batch)
        moments.update(features)
        used += features.shape[0]
    if used == 0:
        print("feature normalisation: no readable training item; features are left raw", file=sys.stderr)
        return 0
    mean, std = moments.compute()
    norm.set_statistics(mean, floored(std))
    return used
