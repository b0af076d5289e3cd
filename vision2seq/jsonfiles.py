"""Reading JSON files with one-line errors.

Every problem with a file raises :class:`vision2seq.errors.UserError` (or the subclass the caller names)
with a message that names the file and what is wrong, so the command line can print it instead of a
traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vision2seq.errors import UserError

__all__ = ["MAX_JSON_BYTES", "MAX_JSON_DEPTH", "read_json"]

MAX_JSON_BYTES = 1 << 30
"""Largest JSON file read (1 GiB; COCO's Karpathy split file, the largest we know, is about 150 MB)."""
MAX_JSON_DEPTH = 64
"""Deepest nesting of lists/objects accepted (annotation and results files nest 3 or 4 levels)."""


def read_json(
    path: str | Path,
    *,
    error: type[UserError] = UserError,
    position_sep: str = ", ",
    max_bytes: int = MAX_JSON_BYTES,
) -> Any:
    """Parse a UTF-8 JSON file of at most ``max_bytes``, nested at most ``MAX_JSON_DEPTH`` levels.

    Args:
        path: The file.
        error: The exception raised for any problem (``UserError`` or a subclass).
        position_sep: What separates line and column in the message of malformed JSON
            (``"line 2, column 3"``); the caption datasets write ``"line 2 column 3"``.
        max_bytes: Larger files are refused before they are parsed.

    Raises:
        UserError: (``error``) the file is missing, a directory, unreadable, not UTF-8, larger than
            ``max_bytes``, nested too deeply, or malformed JSON (the message then gives the line and column).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:  # bounded read: also safe on /dev/zero or a FIFO
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise error(f"{path}: larger than {max_bytes:,} bytes, the limit for JSON files")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a JSON file") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}): expected a JSON file") from None
    except PermissionError:
        raise error(f"{path}: cannot read: permission denied") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    too_deep = f"{path}: nested more than {MAX_JSON_DEPTH} levels deep, not an annotation or results file"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"{path}: malformed JSON at line {exc.lineno}{position_sep}column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:  # deeper than Python's recursion limit (about 1000 levels)
        raise error(too_deep) from None
    if _depth(value) > MAX_JSON_DEPTH:  # shallower than that, but deep enough to break later code
        raise error(too_deep)
    return value


def _depth(value: Any) -> int:
    """How deeply lists/objects nest in ``value`` (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:  # no need to walk further down than the limit
                stack.extend(
                    (child, depth + 1) for child in (node.values() if isinstance(node, dict) else node)
                )
    return deepest
