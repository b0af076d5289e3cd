"""Torch datasets and loaders for captioning: (image or cached feature, caption) pairs for training,
one item per image with its references for evaluation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from vision2seq.config import CaptioningConfig
from vision2seq.data.captions import CaptionedImage, check_images_exist, load_caption_dataset, select_split
from vision2seq.data.features import (
    FeatureStore,
    cached_features,
    default_cache_root,
    files_fingerprint,
    module_fingerprint,
)
from vision2seq.data.images import ImageFiles, ImageReadError, collate_good, load_image
from vision2seq.data.samplers import EpochSampler, ShardSampler, loader_options, lone_last_batch
from vision2seq.data.vocab import Vocabulary
from vision2seq.engine.distributed import SINGLE, DistContext
from vision2seq.models.encoder import ImageEncoder
from vision2seq.resources import worker_count


class ImageSource:
    """Gives the model input of image ``i``: its cached feature row, or its decoded, transformed pixels."""

    def __init__(self, paths: list[Path], transform: Callable, store: FeatureStore | None) -> None:
        self.paths, self.transform, self.store = paths, transform, store

    @property
    def input_key(self) -> str:
        return "features" if self.store is not None else "images"

    def __call__(self, i: int) -> torch.Tensor:
        if self.store is not None:
            return self.store[self.store.rows[str(self.paths[i])]]
        return self.transform(load_image(self.paths[i]))


class ImageItems(Dataset):
    """Every image of a source once, as ``{"features" | "images": tensor}`` items (feature statistics)."""

    def __init__(self, source: ImageSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source.paths)

    def __getitem__(self, index: int) -> dict[str, Any] | str:
        try:
            return {self.source.input_key: self.source(index)}
        except ImageReadError as exc:
            return str(exc)


class CaptionPairs(Dataset):
    """Training items: one per (image, reference caption) pair."""

    def __init__(self, records: list[CaptionedImage], source: ImageSource, vocab: Vocabulary, max_len: int):
        self.source = source
        self.pairs = [
            (i, vocab.encode(tokens, max_len)) for i, r in enumerate(records) for tokens in r.tokens
        ]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any] | str:
        image, caption = self.pairs[index]
        try:
            return {self.source.input_key: self.source(image), "caption": torch.tensor(caption)}
        except ImageReadError as exc:
            return str(exc)  # reported by the training loop, which skips the item


class CaptionGroups(Dataset):
    """Training items when the CNN trains with the decoder: one per image with all its reference captions.

    The encoder then runs once per image instead of once per caption (five times fewer CNN passes on
    COCO-style data; self-critical.pytorch's ``seq_per_img``); ``collate_captions`` lays the captions
    out flat with ``caption_image``, the batch row of each caption's image.
    """

    def __init__(self, records: list[CaptionedImage], source: ImageSource, vocab: Vocabulary, max_len: int):
        self.source = source
        self.groups = [[vocab.encode(tokens, max_len) for tokens in r.tokens] for r in records]

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> dict[str, Any] | str:
        try:
            image = self.source(index)
        except ImageReadError as exc:
            return str(exc)
        return {self.source.input_key: image, "group": [torch.tensor(c) for c in self.groups[index]]}

    def images_per_batch(self, captions_per_batch: int) -> int:
        """Images per batch so a batch holds about ``captions_per_batch`` captions (``train.batch_size``
        counts captions, as it does with a frozen encoder)."""
        captions = sum(len(g) for g in self.groups)
        return max(1, round(captions_per_batch * len(self.groups) / max(1, captions)))


class CaptionedImages(Dataset):
    """Evaluation items: one per image, with its key and raw reference captions."""

    def __init__(self, records: list[CaptionedImage], source: ImageSource):
        self.records, self.source = records, source

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any] | str:
        r = self.records[index]
        try:
            return {self.source.input_key: self.source(index), "key": r.key, "references": r.captions}
        except ImageReadError as exc:
            return str(exc)


def collate_captions(
    items: list[dict[str, Any] | str], inputs: tuple[str, ...] = ("features", "images")
) -> dict[str, Any]:
    """Stack the ``inputs`` (images, or clips' frames, or their cached features), right-pad captions with
    ``<pad>`` (id 0), keep keys/references as lists.

    Items that could not be read (error lines) travel as ``errors``, for the loop to report.
    """
    batch: dict[str, Any] = {"errors": [it for it in items if isinstance(it, str)]}
    items = [it for it in items if not isinstance(it, str)]
    if not items:
        return batch
    for name in inputs:
        if name in items[0]:
            batch[name] = torch.stack([it[name] for it in items])
    if "caption" in items[0]:
        batch["captions"] = torch.nn.utils.rnn.pad_sequence([it["caption"] for it in items], batch_first=True)
    if "group" in items[0]:  # CaptionGroups: every caption of every image, and its image's row
        captions = [c for it in items for c in it["group"]]
        batch["captions"] = torch.nn.utils.rnn.pad_sequence(captions, batch_first=True)
        batch["caption_image"] = torch.tensor([i for i, it in enumerate(items) for _ in it["group"]])
    if "key" in items[0]:
        batch["keys"] = [it["key"] for it in items]
        batch["references"] = [it["references"] for it in items]
    return batch


@dataclass
class CaptionData:
    vocab: Vocabulary
    train: DataLoader
    val: DataLoader


def prepare_records(config: CaptioningConfig, split: str | list[str]) -> list[CaptionedImage]:
    d = config.data
    records = load_caption_dataset(d.annotations, d.images, d.val_annotations, d.val_images)
    chosen = select_split(records, split)
    if not chosen:
        present = sorted({r.split for r in records})
        raise ImageReadError(f"{d.annotations}: no images in split {split} (splits present: {present})")
    return check_images_exist(chosen, d.annotations, d.skip_missing)


def image_sources(
    config: CaptioningConfig,
    encoder: ImageEncoder,
    splits: list[list[CaptionedImage]],
    device: torch.device,
    dist: DistContext = SINGLE,
) -> list[tuple[ImageSource, list[CaptionedImage]]]:
    """An input source per list of records, sharing one feature cache when the encoder is frozen.

    The cache covers the images of all the lists and is built once (sharded across ranks under
    torchrun); images that fail to decode are reported and dropped from the returned records.
    """
    transform = encoder.preprocessing.transform()
    if not (encoder.frozen and config.data.cache_features):
        return [(ImageSource([r.path for r in records], transform, None), records) for records in splits]
    unique = sorted({r.path for records in splits for r in records}, key=str)
    fingerprint = module_fingerprint(
        encoder, encoder.output, encoder.preprocessing, files_fingerprint(unique)
    )
    root = Path(config.data.cache_dir) if config.data.cache_dir else default_cache_root()
    encoder.to(device).eval()
    h, w = encoder.grid_size
    shape = (encoder.feature_dim,) if encoder.output == "pooled" else (h * w, encoder.feature_dim)

    def encode(images: torch.Tensor) -> torch.Tensor:
        return encoder(images.to(device))

    store = cached_features(
        root / "features",
        fingerprint,
        [str(p) for p in unique],
        ImageFiles(unique, transform),
        collate_good,
        encode,
        shape,
        batch_size=config.train.batch_size,
        num_workers=worker_count(config.train.num_workers),
        dist=dist,
    )
    sources = []
    for records in splits:
        kept = [r for r in records if str(r.path) not in store.failed]
        sources.append((ImageSource([r.path for r in kept], transform, store), kept))
    return sources


def build_caption_data(
    config: CaptioningConfig,
    encoder: ImageEncoder,
    device: torch.device,
    vocab: Vocabulary | None = None,
    dist: DistContext = SINGLE,
) -> CaptionData:
    """Training and validation loaders (and the vocabulary, built from the training captions)."""
    d, t = config.data, config.train
    train_records = prepare_records(config, d.train_splits)
    val_records = prepare_records(config, d.val_split)[: d.max_val_images]
    if vocab is None:
        vocab = Vocabulary.build((tokens for r in train_records for tokens in r.tokens), d.min_word_freq)
    (train_source, train_records), (val_source, val_records) = image_sources(
        config, encoder, [train_records, val_records], device, dist
    )
    train_set: CaptionPairs | CaptionGroups | CaptionedImages
    images_per_batch = t.batch_size
    if t.objective == "scst":
        # SCST samples its own captions: one item per image, with its key for the reward's references.
        train_set = CaptionedImages(train_records, train_source)
    elif train_source.store is None:
        train_set = CaptionGroups(train_records, train_source, vocab, d.max_caption_len)
        images_per_batch = train_set.images_per_batch(t.batch_size)
    else:
        train_set = CaptionPairs(train_records, train_source, vocab, d.max_caption_len)
    val_set = CaptionedImages(val_records, val_source)
    # Cached features are small reads from disk: worker processes would only add overhead.
    workers = 0 if train_source.store is not None else worker_count(t.num_workers)
    # A trained encoder runs batch norm in training mode, which a final batch of one image would break.
    trained_cnn = train_source.store is None and not encoder.frozen
    train = DataLoader(
        train_set,
        batch_size=images_per_batch,
        drop_last=trained_cnn and lone_last_batch(len(train_set), images_per_batch, dist.world_size),
        sampler=EpochSampler(len(train_set), config.seed, dist.rank, dist.world_size),
        num_workers=workers,
        collate_fn=collate_captions,
        generator=torch.Generator().manual_seed(config.seed),  # keeps the global RNG for the model
        **loader_options(t, train_set, workers, device),
    )
    val = eval_loader(val_set, t.batch_size, workers, device, dist)
    return CaptionData(vocab, train, val)


def eval_loader(
    dataset: Dataset, batch_size: int, workers: int, device: torch.device, dist: DistContext = SINGLE
) -> DataLoader:
    """In-order loader over this rank's shard of ``dataset``."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset), dist.rank, dist.world_size),
        num_workers=workers,
        collate_fn=collate_captions,
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),
    )


def build_eval_loader(
    config: CaptioningConfig,
    encoder: ImageEncoder,
    device: torch.device,
    split: str,
    batch_size: int | None = None,
) -> DataLoader:
    """One item per image of ``split`` (features from the cache when the encoder is frozen)."""
    [(source, records)] = image_sources(config, encoder, [prepare_records(config, split)], device)
    workers = 0 if source.store is not None else worker_count(config.train.num_workers)
    return eval_loader(
        CaptionedImages(records, source), batch_size or config.train.batch_size, workers, device
    )
