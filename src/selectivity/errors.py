"""The one base class of errors a user can fix, and the rule the command line applies to them.

Every error raised for bad input (a key, a value, a file, a folder, a model, data, a missing
optional package) derives from `SelectivityError`, beside the built-in class it has always been
(ConfigError is still a ValueError). The command line catches `SelectivityError` alone and prints
its message as one line, `selectivity: error: <message>`, with exit code 2: no traceback, since
the message says what to change. Anything else is a bug and keeps its traceback.

This module imports nothing of the package, so any module may import it.
"""

from __future__ import annotations

__all__ = ["ConfigError", "SelectivityError", "UserError"]


class SelectivityError(Exception):
    """Base of every error the user can fix; the message is one line that says what to do."""


class UserError(SelectivityError):
    """A command's options that do not go together (the command line's own checks)."""


class ConfigError(SelectivityError, ValueError):
    """A bad key, value or preset; the message is one line for the user (`selectivity.config`
    raises it and re-exports it)."""
