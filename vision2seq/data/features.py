"""On-disk feature cache for a frozen encoder: computed once, read row by row, never read half-written
or damaged.

A cache lives in ``<root>/<fingerprint>/``: ``features.npy`` (float16, one row per item) and
``meta.json`` (item keys, failed items, the array's shape and a CRC-32 per row, plus a SHA-256 of all
that). The fingerprint hashes the encoder's weights, its preprocessing and output mode, and every input
file's path, size and modification time, so a change to any of them selects a new cache. A cache is
built in a temporary folder and renamed into place only when complete, so an interrupted build is
simply rebuilt next time.

Integrity, at a cost that does not grow with the cache: opening a cache checks its metadata (digest,
keys, shape) and that ``features.npy`` has exactly the size its header and the metadata say (catches
truncation and garbled files); a cache that fails is deleted and rebuilt, with one line on stderr.
Every row is checked when it is read: its CRC-32 (zeroed, flipped or shuffled bytes) and that its
values are finite. A row that fails stops the run with one line (``FeatureCacheError``) and marks the
cache damaged, so the next run rebuilds it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from vision2seq.engine.distributed import SINGLE, DistContext
from vision2seq.errors import UserError
from vision2seq.errors import report as report_skipped
from vision2seq.files import os_error, write_text
from vision2seq.files import reason as os_reason


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


CACHE_VERSION = 2
"""Version 2 added the per-row checksums; caches of other versions are rebuilt."""
DAMAGED_MARK = "DAMAGED"
"""A file a run writes into a cache it found damaged while reading it, so the next run rebuilds it."""


class FeatureCacheError(UserError):
    """A feature cache whose files were damaged after it was built, or a cache folder we cannot write."""

    def __init__(self, message: str) -> None:
        # A DataLoader worker re-raises this in the main process as FeatureCacheError("Caught ... Original
        # Traceback ... FeatureCacheError: <message>"): keep the one line that matters.
        if "\nOriginal Traceback" in message:
            message = message.strip().splitlines()[-1].split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


def _digest(meta: dict) -> str:
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()


def _row_checksums(path: Path, rows: int, row_bytes: int, offset: int) -> list[int]:
    """CRC-32 of every row of ``features.npy``, read sequentially once."""
    checksums = []
    with open(path, "rb") as f:
        f.seek(offset)
        for _ in range(rows):
            checksums.append(zlib.crc32(f.read(row_bytes)))
    return checksums


class FeatureStore:
    """A complete cache: ``store[row]`` -> float32 tensor, read from disk on demand and verified.

    Rows are read with ``os.pread`` rather than through a memory map: the bytes then live in the OS
    page cache, not in this process, so its resident memory stays flat however large the cache is
    (a memory map counts every page it has touched as resident; measured in ``benchmarks/``).
    """

    def __init__(self, directory: Path) -> None:
        """Open the cache in ``directory``, checking its metadata and file sizes (not its rows).

        Raises:
            FeatureCacheError: marked damaged, built by another version, garbled or inconsistent
                metadata, or a ``features.npy`` that is garbled, truncated or of another shape.
        """
        self.directory = directory
        meta = self._read_meta()
        self.keys: list[str] = meta["keys"]
        self.failed: dict[str, str] = meta["failed"]
        self._checksums: list[int] = meta["crc32"]
        self.rows = {key: i for i, key in enumerate(self.keys)}
        self.shape: tuple[int, ...] = tuple(meta["shape"])
        self.dtype = np.dtype(np.float16)
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._offset = self._check_array()
        self._fd: int | None = None

    def _damaged(self, reason: str) -> FeatureCacheError:
        return FeatureCacheError(f"{self.directory}: feature cache damaged ({reason})")

    def _read_meta(self) -> dict:
        mark = self.directory / DAMAGED_MARK
        if mark.exists():
            raise self._damaged(f"marked by an earlier run: {mark.read_text(errors='replace').strip()[:200]}")
        try:
            meta = json.loads((self.directory / "meta.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise self._damaged(f"meta.json unreadable: {type(exc).__name__}") from None
        if not isinstance(meta, dict):
            raise self._damaged("meta.json is not an object")
        if meta.get("version") != CACHE_VERSION:  # e.g. written before row checksums existed
            raise FeatureCacheError(
                f"{self.directory}: feature cache written by another vision2seq version (cache format "
                f"{meta.get('version', 1)!r}, this one reads {CACHE_VERSION})"
            )
        content = {k: v for k, v in meta.items() if k != "sha256"}
        if meta.get("sha256") != _digest(content):
            raise self._damaged("meta.json does not match its checksum")
        keys, shape, checksums = meta.get("keys"), meta.get("shape"), meta.get("crc32")
        valid = (
            isinstance(keys, list)
            and isinstance(meta.get("failed"), dict)
            and isinstance(shape, list)
            and len(shape) >= 2
            and all(isinstance(n, int) and n >= 0 for n in shape)
            and isinstance(checksums, list)
            and len(keys) == len(checksums) == shape[0]
        )
        if not valid:
            raise self._damaged("meta.json has inconsistent keys, shape or checksums")
        return meta

    def _check_array(self) -> int:
        """The data offset of ``features.npy``, after checking its header and its exact size."""
        path = self.directory / "features.npy"
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                offset = f.tell()
                size = os.fstat(f.fileno()).st_size
        except Exception as exc:  # numpy parses the header as Python literals: damaged bytes raise
            # ValueError, SyntaxError, tokenize.TokenError, ... any of which means the same to us
            raise self._damaged(f"features.npy header unreadable: {type(exc).__name__}") from None
        if tuple(shape) != self.shape or fortran or np.dtype(dtype) != self.dtype:
            raise self._damaged(
                f"features.npy holds {dtype} {tuple(shape)}, meta.json says float16 {self.shape}"
            )
        expected = offset + self.shape[0] * self._row_bytes
        if size != expected:
            raise self._damaged(f"features.npy is {size:,} bytes, expected {expected:,}; truncated?")
        return offset

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
        """Row ``row`` as float32, after checking its CRC-32 and that every value is finite.

        Raises:
            FeatureCacheError: the row fails (the cache is then marked for a rebuild by the next run).
        """
        if not 0 <= row < self.shape[0]:
            raise IndexError(f"row {row} out of range for a cache of {self.shape[0]} rows")
        if self._fd is None:
            self._fd = os.open(self.directory / "features.npy", os.O_RDONLY)
        data = os.pread(self._fd, self._row_bytes, self._offset + row * self._row_bytes)
        if len(data) != self._row_bytes:
            self._fail(f"features.npy ends inside row {row}; truncated?")
        if zlib.crc32(data) != self._checksums[row]:
            self._fail(f"row {row} of features.npy does not match its checksum")
        values = np.frombuffer(data, dtype=self.dtype).reshape(self.shape[1:]).astype(np.float32)
        if not np.isfinite(values).all():  # cannot pass the checksum unless built so; never train on it
            self._fail(f"row {row} of features.npy holds NaN or infinite values")
        return torch.from_numpy(values)

    def _fail(self, reason: str) -> None:
        try:
            (self.directory / DAMAGED_MARK).write_text(reason + "\n")
            then = "it will be rebuilt on the next run"
        except OSError:
            then = "delete the folder to rebuild it"
        raise FeatureCacheError(f"{self.directory}: feature cache damaged ({reason}); {then}")

    @staticmethod
    def is_complete(directory: Path) -> bool:
        return (directory / "meta.json").is_file() and (directory / "features.npy").is_file()


def write_meta(directory: Path, keys: list[str], failed: dict[str, str]) -> None:
    """Complete a cache whose ``features.npy`` is written: ``meta.json`` with the row checksums."""
    header = np.load(directory / "features.npy", mmap_mode="r")  # reads the header only
    shape, offset = list(header.shape), header.offset
    del header
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(np.float16).itemsize
    meta = {
        "version": CACHE_VERSION,
        "keys": keys,
        "failed": failed,
        "shape": shape,
        "crc32": _row_checksums(directory / "features.npy", len(keys), row_bytes, offset),
    }
    write_text(directory / "meta.json", json.dumps({**meta, "sha256": _digest(meta)}), "write cache metadata")


def check_writable(root: Path) -> None:
    """Create ``root`` and a file in it, or raise ``FeatureCacheError`` naming the fix."""
    probe = root / f".write-test.{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise FeatureCacheError(
            f"{root}: feature cache folder is not writable ({reason}); set data.cache_dir to a writable "
            "folder, or data.cache_features=false"
        ) from None


def _allocate(path: Path, shape: tuple[int, ...]) -> None:
    """Write the ``.npy`` header of a float16 array of ``shape`` and reserve the disk space of its data.

    The space is reserved up front (``posix_fallocate``) so that a disk too small for the cache fails
    here, as one ``OSError``, before any image is encoded; rows are then written with ``os.pwrite``, never
    through a memory map (a full disk under a memory map is a SIGBUS that kills the process).
    """
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)),
        "fortran_order": False,
        "shape": shape,
    }
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        offset = f.tell()
        size = offset + int(np.prod(shape, dtype=np.int64)) * 2
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise  # ENOSPC, EFBIG, EDQUOT, EIO: the cache does not fit
            f.truncate(size)  # a filesystem without fallocate: pwrite still reports a full disk
        f.flush()
        os.fsync(f.fileno())


def _data_offset(path: Path) -> int:
    with open(path, "rb") as f:
        np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f)  # as ``_allocate`` wrote it
        return f.tell()


def _encode_into(
    path: Path,
    keys: list[str],
    dataset: Dataset,
    collate: Callable,
    encode: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int,
    num_workers: int,
    report: Callable[[str], None],
    dist: DistContext,
) -> dict[str, str]:
    """Encode this rank's shard of ``dataset`` into the rows of ``path``; returns the failed items."""
    offset = _data_offset(path)
    shard = Subset(dataset, range(dist.rank, len(keys), dist.world_size))
    loader = DataLoader(shard, batch_size=batch_size, num_workers=num_workers, collate_fn=collate)
    failed: dict[str, str] = {}
    fd = os.open(path, os.O_WRONLY)
    try:
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
                if inputs is None:
                    continue
                features = encode(inputs).float().cpu().numpy()  # (B, *feature_shape)
                finite = np.isfinite(features.astype(np.float16)).reshape(len(features), -1).all(axis=1)
                exact = np.isfinite(features).reshape(len(features), -1).all(axis=1)
                for row, index in enumerate(indices.tolist()):
                    if not finite[row]:
                        failed[keys[index]] = (  # e.g. NaN weights, or a random-init deep CNN: skipped
                            f"{keys[index]}: the encoder produced NaN or infinite features"
                            if not exact[row]
                            else f"{keys[index]}: features beyond float16's range (65504) of the feature "
                            "cache (a random-init deep encoder?); use pretrained weights, a smaller encoder "
                            "such as resnet18, or data.cache_features=false"
                        )
                        report(failed[keys[index]])
                        continue  # its row stays zero (reserved, never read)
                    data = features[row].astype(np.float16).tobytes()
                    _pwrite_all(fd, data, offset + index * len(data))
        os.fsync(fd)
    finally:
        os.close(fd)
    return failed


def _pwrite_all(fd: int, data: bytes, position: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        view, position = view[written:], position + written


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
    shared file (plain writes into space reserved before encoding: a full disk is one line, never a
    SIGBUS); rank 0 then completes the cache. A failed build removes its temporary folder. ``root``
    must be on storage all ranks see (multi-node jobs: a shared filesystem).

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
    if directory.exists():  # complete (renamed into place whole), unless damaged since
        try:
            store = FeatureStore(directory)
        except FeatureCacheError as exc:
            if dist.is_main:
                print(f"{exc}; rebuilding it", file=sys.stderr, flush=True)
                try:
                    shutil.rmtree(directory)
                except OSError as err:
                    reason = (err.strerror or type(err).__name__).lower()
                    raise FeatureCacheError(f"{exc}; cannot delete it to rebuild ({reason})") from None
        else:
            if dist.is_main:
                for message in store.failed.values():  # still skipped: say so again
                    report(message)
            return store
    if dist.is_main:
        check_writable(root)
    # Rank 0 names the build folder for all ranks; the pid keeps concurrent jobs apart.
    tmp = root / dist.broadcast_object(f".{fingerprint[:24]}.{os.getpid()}.tmp")
    try:
        if dist.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            _allocate(tmp / "features.npy", (len(keys), *feature_shape))
        dist.barrier()
        failed = _encode_into(
            tmp / "features.npy", keys, dataset, collate, encode, batch_size, num_workers, report, dist
        )
        failed = {k: v for part in dist.all_gather_object(failed) for k, v in part.items()}
        if len(failed) == len(keys):
            raise UserError(
                f"none of the {len(keys)} inputs could be read, so there are no features to cache"
            )
        if dist.is_main:
            write_meta(tmp, keys, failed)
            try:
                os.replace(tmp, directory)
            except OSError:  # another job finished the same cache first
                shutil.rmtree(tmp, ignore_errors=True)
    except BaseException as exc:
        if dist.is_main:  # a failed build leaves nothing behind
            shutil.rmtree(tmp, ignore_errors=True)
        failure = os_error(exc) if isinstance(exc, OSError) else None  # not a WriteError: one line already
        if failure is not None:
            raise FeatureCacheError(
                f"{root}: cannot write the feature cache: {os_reason(failure)} (nothing was kept; "
                "free space, set data.cache_dir to another folder, or data.cache_features=false)"
            ) from None
        raise
    dist.barrier()
    return FeatureStore(directory)
