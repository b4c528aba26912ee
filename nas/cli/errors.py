"""The one exception the CLI reports as a plain ``error:`` line (exit code 2) instead of a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""
