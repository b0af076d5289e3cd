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

__all__ = ["read_json"]


def read_json(path: str | Path, *, error: type[UserError] = UserError, position_sep: str = ", ") -> Any:
    """Parse a UTF-8 JSON file.

    Args:
        path: The file.
        error: The exception raised for any problem (``UserError`` or a subclass).
        position_sep: What separates line and column in the message of malformed JSON
            (``"line 2, column 3"``); the caption datasets write ``"line 2 column 3"``.

    Raises:
        UserError: (``error``) the file is missing, a directory, unreadable, not UTF-8, or malformed JSON
            (the message then gives the line and column).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a JSON file") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}): expected a JSON file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"{path}: malformed JSON at line {exc.lineno}{position_sep}column {exc.colno}: {exc.msg}"
        ) from None
