"""Errors a user can fix; the CLI prints them as one line on stderr, never a traceback.

Inputs that are skipped (a bad image or video among good ones) are not errors that stop the work:
they are ``report``-ed, one line each, and counted, so the CLI can finish the job and still exit 1.
"""

import sys


class UserError(Exception):
    """A problem with the user's input (file, config, checkpoint); the message names the file and the fix."""


_skipped = 0


def report(message: str) -> None:
    """Print one line about an input that was skipped, and count it."""
    global _skipped
    _skipped += 1
    print(message, file=sys.stderr, flush=True)


def skipped_count() -> int:
    """How many inputs were reported and skipped in this process so far."""
    return _skipped
