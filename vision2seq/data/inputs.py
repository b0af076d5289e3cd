"""Where inputs come from: command-line paths expanded into files (`find_inputs`), and paths listed in a
dataset file joined inside its root (`join_inside`). One set of rules for images, videos and frame folders.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath

from vision2seq.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
# A frame folder holds image files; any image `load_image` reads may be a frame.
FRAME_SUFFIXES = frozenset(IMAGE_SUFFIXES)
VIDEO_SUFFIXES = frozenset(
    {".avi", ".mp4", ".m4v", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv"}
)


def _why(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def _has_suffix(name: str, suffixes: Iterable[str]) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in suffixes


def is_frame_folder(path: Path) -> bool:
    """Whether ``path`` is a folder directly holding image files (extracted video frames).

    Raises:
        OSError: the folder cannot be listed.
    """
    with os.scandir(path) as entries:
        return any(_has_suffix(e.name, FRAME_SUFFIXES) and e.is_file() for e in entries)


def _walk(folder: Path, suffixes: frozenset[str], frame_folders: bool, errors: list[str]) -> list[Path]:
    """Files under ``folder`` with ``suffixes`` (and frame folders, which are not descended into).

    A sub-folder that cannot be listed is one error line; the rest of the tree is still searched.
    """
    found: list[Path] = []

    def unreadable(exc: OSError) -> None:
        errors.append(f"{exc.filename}: cannot list folder ({_why(exc)}); skipped")

    for top, dirs, files in os.walk(folder, onerror=unreadable):
        here = Path(top)
        if frame_folders and here != folder and any(_has_suffix(f, FRAME_SUFFIXES) for f in files):
            found.append(here)
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(here / f for f in files if _has_suffix(f, suffixes))
    return found


def find_inputs(
    inputs: Sequence[str], suffixes: Iterable[str], *, frame_folders: bool = False, what: str = "files"
) -> tuple[list[Path], list[str]]:
    """Expand files, folders (searched recursively) and glob patterns into input paths.

    Args:
        inputs: What the user named.
        suffixes: File suffixes (lower case, with the dot) a folder search keeps.
        frame_folders: Video inputs: a folder directly holding images is one input (a video as
            extracted frames), given itself or found inside a searched folder.
        what: The kind of file, for the "folder contains no ..." line.

    Returns:
        The paths in a stable order, and one error line per input that matched nothing or could not
        be listed (a folder without permission, given as or above an input); the other inputs are
        still expanded. A named file is returned as is: a missing or bad one is reported when read.
    """
    wanted = frozenset(s.lower() for s in suffixes)
    found: list[Path] = []
    errors: list[str] = []
    for item in inputs:
        path = Path(item)
        try:
            exists = path.exists()
            is_dir = path.is_dir()
        except OSError as exc:  # e.g. a parent folder without search permission
            errors.append(f"{item}: cannot access ({_why(exc)}); skipped")
            continue
        if not exists and any(ch in item for ch in "*?["):
            parent = Path(path.anchor or ".")
            pattern = str(path.relative_to(parent)) if path.is_absolute() else item
            matches = sorted(parent.glob(pattern))
            if not matches:
                errors.append(f"{item}: pattern matched no {what}")
            for match in matches:
                if match.is_dir():
                    found.extend(_expand_folder(match, wanted, frame_folders, what, errors))
                else:
                    found.append(match)
        elif is_dir:
            found.extend(_expand_folder(path, wanted, frame_folders, what, errors))
        else:
            found.append(path)
    return found, errors


def _expand_folder(
    folder: Path, suffixes: frozenset[str], frame_folders: bool, what: str, errors: list[str]
) -> list[Path]:
    try:
        if frame_folders and is_frame_folder(folder):
            return [folder]
        os.scandir(folder).close()  # an unlistable folder given directly: one line, not a silent skip
    except OSError as exc:
        errors.append(f"{folder}: cannot list folder ({_why(exc)}); skipped")
        return []
    files = _walk(folder, suffixes, frame_folders, errors)
    if not files:
        errors.append(f"{folder}: folder contains no {what}")
    return sorted(files, key=str)


def join_inside(root: Path, relative: str, where: str, error: Callable[[str], Exception] = UserError) -> Path:
    """``root / relative`` for a path listed in a dataset file, refusing paths that leave ``root``.

    Absolute paths, drive letters and ``..`` that climb out of ``root`` (after normalising; ``\\`` counts
    as a separator) are refused, as are an empty path and the root itself. The check is on the text,
    not on resolved paths, so symlinked dataset folders keep working.

    Args:
        root: The dataset root.
        relative: The listed path.
        where: ``file:line`` for the message.
        error: The exception type to raise.
    """
    if not relative.strip():
        raise error(f"{where}: empty path")
    normal = os.path.normpath(relative.replace("\\", "/"))
    if normal == ".":
        raise error(f"{where}: path {relative!r} names the dataset root itself, not a file")
    if os.path.isabs(normal) or re.match(r"^[A-Za-z]:", normal) or normal.split(os.sep)[0] == "..":
        raise error(f"{where}: path {relative!r} leaves the dataset root {root}; list paths relative to it")
    return root / PurePosixPath(normal.replace(os.sep, "/"))
