"""Errors a user can fix; the CLI prints them as one line on stderr, never a traceback."""


class UserError(Exception):
    """A problem with the user's input (file, config, checkpoint); the message names the file and the fix."""
