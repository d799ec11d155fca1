"""The library's own error types (a leaf module: it imports nothing of ``recsys``).

Every error a user can act on derives from :class:`RecsysError`; its message says what is
wrong, where (file, row, config key) and how to fix it. The command line prints these as one
line; any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations


class RecsysError(Exception):
    """An error the user can fix; the message names the place and the fix."""


class ConfigError(RecsysError, ValueError):
    """A configuration that cannot be used; the message says where and how to fix it."""


class DataError(RecsysError, ValueError):
    """Invalid input data; the message names the file, the row or column and the fix."""


class RunFolderError(RecsysError, FileNotFoundError):
    """A run folder that lacks what the command needs (a checkpoint, a config, its dataset)."""


class NonFiniteLossError(RecsysError, RuntimeError):
    """A loss term or gradient became NaN/inf; the message names the epoch, batch and term."""
