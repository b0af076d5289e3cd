"""The one way the package writes a file: whole or not at all, and a failed write is one line.

Every file a command writes (checkpoints, ``metrics.csv``, the feature cache's files, confusion matrices,
COCO results) goes through ``atomic_write``: the content goes to a temporary file in the same folder,
is flushed to disk (``fsync``) and renamed over the target only when complete. A full disk (ENOSPC), a
quota (EDQUOT), an I/O error (EIO), a file-size limit (EFBIG) or a read-only folder therefore never
leaves a half-written file in place of a good one: the previous file is kept, the temporary file is
removed, and the caller gets a ``WriteError`` naming the file and the reason.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from vision2seq.errors import UserError


class WriteError(UserError):
    """A file could not be written (full disk, I/O error, read-only folder); the previous one is kept."""


def os_error(exc: BaseException | None) -> OSError | None:
    """The ``OSError`` with an errno behind ``exc`` (a library may wrap it, or raise while handling it)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def reason(exc: OSError) -> str:
    """``no space left on device``, ``input/output error``, ...: the errno's words, lower case."""
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


def write_failure(path: str | Path, exc: OSError, what: str = "write file") -> WriteError:
    """The one-line error ``<path>: cannot <what>: <reason>``, saying whether a previous file is kept."""
    path = Path(path)
    kept = " (the previous file is kept)" if path.exists() else ""
    return WriteError(f"{path}: cannot {what}: {reason(exc)}{kept}")


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", what: str = "write file", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; it replaces ``path`` when the block ends.

    Args:
        path: the file to (re)place; its folder is created when missing.
        mode: ``wb`` or ``w`` (text; ``kwargs`` such as ``encoding``/``newline`` go to ``open``).
        what: the action, for the message (``save checkpoint``, ``write metrics``).

    Raises:
        WriteError: the write, flush, fsync or rename failed with an ``OSError`` (also one wrapped by the
            writing library); any other exception passes through. Either way ``path`` is unchanged.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        failure = os_error(exc) if isinstance(exc, Exception) else None
        if failure is None or isinstance(exc, UserError):
            raise
        raise write_failure(path, failure, what) from None


def write_bytes(path: str | Path, data: bytes, what: str = "write file") -> None:
    """Atomically write ``data`` to ``path`` (see ``atomic_write``)."""
    with atomic_write(path, "wb", what) as f:
        f.write(data)


def write_text(path: str | Path, text: str, what: str = "write file") -> None:
    """Atomically write UTF-8 ``text`` to ``path`` (see ``atomic_write``)."""
    write_bytes(path, text.encode("utf-8"), what)


def remove_stale_temps(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """Delete temporary files that a killed write of one of ``names`` left in ``folder`` (call only
    while holding the folder, so that no live write is removed); returns what was removed."""
    removed = []
    for name in names:
        for tmp in folder.glob(f".{name}.*.tmp"):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed
