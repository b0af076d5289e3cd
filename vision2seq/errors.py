"""Errors a user can fix; the CLI prints them as one line on stderr, never a traceback.

Inputs that are skipped (a bad image or video among good ones) are not errors that stop the work:
they are ``report``-ed, one line each, and counted, so the CLI can finish the job and still exit 1.

Every line the CLI prints about a file goes through ``escape``: a file name may hold a newline, a tab
or a terminal escape sequence, which would otherwise break the one-line-per-file output or reach the
terminal raw. JSON output keeps names exact (JSON escapes them itself).
"""

import re
import sys


class UserError(Exception):
    """A problem with the user's input (file, config, checkpoint); the message names the file and the fix."""


class UsageError(UserError):
    """A bad command-line value or setting (exit status 2), e.g. a device this machine does not have."""


# C0 controls, DEL and C1 controls (ESC starts terminal escape sequences; U+009B is a one-byte CSI).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def escape(text: str) -> str:
    """``text`` with control characters written as ``\\n``, ``\\t``, ``\\r`` or ``\\xNN`` (one safe line)."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


_skipped = 0


def report(message: str) -> None:
    """Print one line about an input that was skipped (``path: reason``), and count it."""
    global _skipped
    _skipped += 1
    print(escape(message), file=sys.stderr, flush=True)


def skipped_count() -> int:
    """How many inputs were reported and skipped in this process so far."""
    return _skipped
