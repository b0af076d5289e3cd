"""On-disk feature cache for a frozen encoder: computed once, read row by row, never read half-written.

A cache lives in ``<root>/<fingerprint>/``: ``features.npy`` (float16, one row per item) and
``meta.json`` (item keys, failed items). The fingerprint hashes the encoder's weights, its
preprocessing and output mode, and every input file's path, size and modification time, so a change to
any of them selects a new cache. A cache is built in a temporary folder and renamed into place only
when complete, so an interrupted build is simply rebuilt next time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from vision2seq.distributed import SINGLE, DistContext
from vision2seq.errors import UserError
from vision2seq.errors import report as report_skipped


def default_cache_root() -> Path:
    """``$VISION2SEQ_CACHE``, else ``$XDG_CACHE_HOME/vision2seq`` or ``~/.cache/vision2seq``."""
    if os.environ.get("VISION2SEQ_CACHE"):
        return Path(os.environ["VISION2SEQ_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vision2seq"


def module_fingerprint(module: nn.Module, *extra: object) -> str:
    """SHA-256 over a module's tensors (names, shapes, bytes) and any extra descriptive values."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    h.update(repr(extra).encode())
    return h.hexdigest()


def files_fingerprint(paths: Sequence[Path]) -> str:
    """SHA-256 over each file's path, size and modification time."""
    h = hashlib.sha256()
    for path in paths:
        try:
            st = os.stat(path)
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{path}\0missing\n".encode())
    return h.hexdigest()


class FeatureStore:
    """A complete cache: ``store[row]`` -> float32 tensor, read from disk on demand.

    Rows are read with ``os.pread`` rather than through a memory map: the bytes then live in the OS
    page cache, not in this process, so its resident memory stays flat however large the cache is
    (a memory map counts every page it has touched as resident; measured in ``benchmarks/``).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        meta = json.loads((directory / "meta.json").read_text())
        self.keys: list[str] = meta["keys"]
        self.failed: dict[str, str] = meta["failed"]
        self.rows = {key: i for i, key in enumerate(self.keys)}
        header = np.load(directory / "features.npy", mmap_mode="r")  # reads the .npy header only
        self.shape: tuple[int, ...] = tuple(header.shape)
        self.dtype = header.dtype
        self._offset = header.offset
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        del header
        self._fd: int | None = None

    @property
    def array(self) -> np.ndarray:
        """The whole cache as a read-only memory map (for inspection; training reads rows)."""
        return np.load(self.directory / "features.npy", mmap_mode="r")

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None}  # each DataLoader worker opens its own descriptor

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return self.shape[1:]

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, row: int) -> torch.Tensor:
        if not 0 <= row < self.shape[0]:
            raise IndexError(f"row {row} out of range for a cache of {self.shape[0]} rows")
        if self._fd is None:
            self._fd = os.open(self.directory / "features.npy", os.O_RDONLY)
        data = os.pread(self._fd, self._row_bytes, self._offset + row * self._row_bytes)
        values = np.frombuffer(data, dtype=self.dtype).reshape(self.shape[1:])
        return torch.from_numpy(values.astype(np.float32))

    @staticmethod
    def is_complete(directory: Path) -> bool:
        return (directory / "meta.json").is_file() and (directory / "features.npy").is_file()


def cached_features(
    root: Path,
    fingerprint: str,
    keys: list[str],
    dataset: Dataset,
    collate: Callable,
    encode: Callable[[torch.Tensor], torch.Tensor],
    feature_shape: tuple[int, ...],
    *,
    batch_size: int = 64,
    num_workers: int = 2,
    report: Callable[[str], None] = report_skipped,
    dist: DistContext = SINGLE,
) -> FeatureStore:
    """Load the cache for ``fingerprint``, building it first when absent.

    Under torchrun every rank encodes its own shard (every ``world_size``-th item) straight into the
    shared memory-mapped file; rank 0 then completes the cache. ``root`` must be on storage all ranks
    see (multi-node jobs: a shared filesystem).

    Args:
        root: folder holding caches.
        fingerprint: identifies encoder + inputs (``module_fingerprint`` + ``files_fingerprint``).
        keys: one key per dataset item, in dataset order.
        dataset: items ``(index, input)``, or ``(index, error message)`` for an unreadable input.
        collate: batches items into ``(indices, inputs, errors)`` (see ``data.images.collate_good``).
        encode: inputs -> features ``(B, *feature_shape)``, run under ``torch.inference_mode``.
        feature_shape: shape of one item's features.
        report: receives one line per unreadable input (those rows are dropped from training).
        dist: this process's place in a distributed job.
    """
    directory = root / fingerprint[:24]
    if FeatureStore.is_complete(directory):
        store = FeatureStore(directory)
        if dist.is_main:
            for message in store.failed.values():  # still skipped: say so again
                report(message)
        return store
    # Rank 0 names the build folder for all ranks; the pid keeps concurrent jobs apart.
    tmp = root / dist.broadcast_object(f".{fingerprint[:24]}.{os.getpid()}.tmp")
    if dist.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.lib.format.open_memmap(
            tmp / "features.npy", mode="w+", dtype=np.float16, shape=(len(keys), *feature_shape)
        ).flush()
    dist.barrier()
    array = np.load(tmp / "features.npy", mmap_mode="r+")
    shard = Subset(dataset, range(dist.rank, len(keys), dist.world_size))
    loader = DataLoader(shard, batch_size=batch_size, num_workers=num_workers, collate_fn=collate)
    failed: dict[str, str] = {}
    with torch.inference_mode():
        for indices, inputs, errors in tqdm(
            loader,
            desc="caching features",
            unit="batch",
            leave=False,
            disable=None if dist.is_main else True,
            file=sys.stderr,
        ):
            for index, message in errors:
                failed[keys[index]] = message
                report(message)
            if inputs is not None:
                array[indices.numpy()] = encode(inputs).float().cpu().numpy()  # (B, *feature_shape)
    array.flush()
    del array
    failed = {k: v for part in dist.all_gather_object(failed) for k, v in part.items()}
    if len(failed) == len(keys):
        raise UserError(f"none of the {len(keys)} inputs could be read, so there are no features to cache")
    if dist.is_main:
        (tmp / "meta.json").write_text(json.dumps({"keys": keys, "failed": failed}))
        try:
            os.replace(tmp, directory)
        except OSError:  # another job finished the same cache first
            shutil.rmtree(tmp, ignore_errors=True)
    dist.barrier()
    return FeatureStore(directory)
