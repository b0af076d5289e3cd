"""An ``output_dir`` belongs to one training run at a time, and a run's files are never silently replaced.

``claim_output_dir`` is what ``fit`` holds while it trains. It:

- refuses a path that is a file, or a folder that cannot be created or written, before any work;
- refuses a folder holding another run's files (``best.pt``, ``last.pt``, ``metrics.csv``,
  ``tensorboard/``) unless the run is resumed, or ``train.overwrite`` asks to delete them first;
- takes an exclusive ``flock`` on ``output_dir/.vision2seq.lock`` for the whole run, so a second
  ``train`` on the same folder is refused while the first runs. The kernel drops the lock when its
  process ends, however it ends (even SIGKILL), so a killed run never leaves a stale lock behind: the
  lock file may stay, but it is not locked, and ``--resume`` proceeds.

Claims nest within a process: a claim of a folder this process already holds does nothing, so
``train()`` may claim before it builds data and ``fit()`` claim again.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from vision2seq.errors import UserError
from vision2seq.files import remove_stale_temps

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not locked (docs/reliability.md, Guarantees)
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".vision2seq.lock"
RUN_FILES = ("best.pt", "last.pt", "metrics.csv", "tensorboard")
"""What a training run writes into its ``output_dir``; any of them means the folder holds a run."""


class OutputDirError(UserError):
    """An ``output_dir`` that is in use, holds another run, or cannot be written."""


def run_files(path: Path) -> list[str]:
    """The names of ``RUN_FILES`` present in ``path``."""
    return [name for name in RUN_FILES if (path / name).exists()]


@contextmanager
def claim_output_dir(
    path: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    lock: bool = True,
    reads: Sequence[tuple[str, str | Path]] = (),
) -> Iterator[Path]:
    """Check and lock ``path`` for one training run; the lock is held until the ``with`` block ends.

    Args:
        path: the run's ``output_dir``; created (with parents) when missing.
        resume: the run continues the one in ``path`` (its files are expected, not refused).
        overwrite: delete another run's files in ``path`` (``RUN_FILES`` only) instead of refusing.
        lock: take the lock (only the main process of a distributed job writes, so only it locks; the
            other processes still run the checks, which read nothing but the folder listing).
        reads: ``(config key, path)`` of files the same command reads (``train.init_from``):
            ``overwrite`` refuses to delete one of them rather than lose the run's source.

    Raises:
        OutputDirError: ``path`` is a file, cannot be created or written, is locked by a running
            ``train``, holds another run's files without ``resume``/``overwrite`` (or both are set), or
            ``overwrite`` would delete a file in ``reads``.
    """
    path = Path(path)
    if resume and overwrite:
        raise OutputDirError(
            f"{path}: --resume and train.overwrite=true contradict each other (continue the run, or "
            "delete it); drop one of them"
        )
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"{path}: output_dir is a file, not a folder; choose another output_dir")
    if _held_key(path) in _held:
        # Claimed (and checked) by an enclosing block of this process: nothing to redo.
        yield path
        return
    if not lock:
        _check_contents(path, resume, overwrite, reads)
        yield path
        return
    created = _first_missing(path)  # this folder and those below it are ours to remove if we fail
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputDirError(f"{path}: output_dir is not writable ({_reason(exc)})") from None
    try:
        _lock(fd, path)
        # Checked under the lock: a run that held it a moment ago may have just written its files.
        _check_contents(path, resume, overwrite, reads)
        if overwrite:
            _delete_run_files(path)
        # A write killed midway leaves its temporary file; under the lock none is being written.
        remove_stale_temps(path, ("best.pt", "last.pt", "metrics.csv"))
        _probe_writable(path)
        _write_owner(fd)
        key = _held_key(path)
        _held.add(key)
        try:
            yield path
        finally:
            _held.discard(key)
    except BaseException:
        os.close(fd)
        if created is not None:
            _remove_if_only_lock(path, created)  # a run that failed before writing anything leaves no folder
        raise
    else:
        os.close(fd)  # also releases the flock


def _first_missing(path: Path) -> Path | None:
    """The highest folder of ``path`` (itself or a parent) that does not exist yet, or None."""
    missing = None
    for folder in [path, *path.parents]:
        if folder.exists():
            break
        missing = folder
    return missing


def _remove_if_only_lock(path: Path, created: Path) -> None:
    """Remove ``path`` if it holds only the lock file, then the empty folders above it that this claim
    created (``runs/`` of ``runs/a``), up to ``created``."""
    try:
        if [p.name for p in path.iterdir()] == [LOCK_NAME]:
            (path / LOCK_NAME).unlink()
            path.rmdir()
            folder = path
            while folder != created and created in folder.parents:
                folder = folder.parent
                folder.rmdir()  # fails (and stops) when not empty
    except OSError:
        pass


_held: set[tuple[int, int] | None] = set()
"""Folders this process holds (device, inode): a nested claim of one is a no-op, so a caller may claim
early (before building data) around code that claims again (``engine.fit``)."""


def _held_key(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _lock(fd: int, path: Path) -> None:
    if fcntl is None:  # pragma: no cover
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise OutputDirError(f"{path}: cannot lock output_dir ({_reason(exc)})") from None
        owner = _read_owner(fd)
        raise OutputDirError(
            f"{path}: output_dir is in use by another running `vision2seq train`{owner}; wait for it to "
            "finish or choose another output_dir"
        ) from None


def _check_contents(
    path: Path, resume: bool, overwrite: bool, reads: Sequence[tuple[str, str | Path]] = ()
) -> None:
    found = run_files(path) if path.is_dir() else []
    if overwrite and found:
        for key, read in reads:
            doomed = _run_file_holding(path, Path(read))
            if doomed is not None:
                raise OutputDirError(
                    f"{path}: train.overwrite=true would delete {doomed}, which this run reads "
                    f"({key}={read}); copy it out of output_dir first, or choose another output_dir"
                )
    if found and not resume and not overwrite:
        raise OutputDirError(
            f"{path}: holds another run ({', '.join(found)}); pass --resume to continue it, set "
            "train.overwrite=true to replace it, or choose another output_dir"
        )


def _run_file_holding(path: Path, read: Path) -> str | None:
    """The run file of ``path`` that is, or holds, ``read`` (compared after resolving links), or None."""
    try:
        target = read.resolve()
    except (OSError, RuntimeError):
        return None
    for name in run_files(path):
        try:
            run_file = (path / name).resolve()
        except (OSError, RuntimeError):
            continue
        if target == run_file or run_file in target.parents:
            return name
    return None


def _delete_run_files(path: Path) -> None:
    for name in run_files(path):
        target = path / name
        try:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        except OSError as exc:
            raise OutputDirError(f"{target}: cannot delete for train.overwrite ({_reason(exc)})") from None


def _probe_writable(path: Path) -> None:
    """Create and delete a file: a folder on a read-only mount opens its lock file but cannot hold
    checkpoints, and permission bits alone do not say so (root ignores them)."""
    probe = path / f".vision2seq.write-test.{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputDirError(f"{path}: output_dir is not writable ({_reason(exc)})") from None


def _write_owner(fd: int) -> None:
    """Record this process's id in the lock file, so a refused run can say who holds it."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:  # the id is a courtesy; the lock is what matters
        pass


def _read_owner(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (process {text})" if text.isdigit() else ""


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc) or type(exc).__name__).lower()
