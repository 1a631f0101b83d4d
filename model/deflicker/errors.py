"""Exception hierarchy of the engine.

Every error a user can cause is a :class:`DeflickerError`; each subclass also inherits the
builtin whose meaning it shares (so callers may catch either) and carries the process exit
code the CLI uses. Only ``deflicker.cli.main`` turns these into exits.
"""
from __future__ import annotations


class DeflickerError(Exception):
    """Base of every error the engine raises on purpose. Exit code 1."""

    exit_code: int = 1


class InvalidSettingsError(DeflickerError, ValueError):
    """A setting, option or argument is out of range or malformed. Exit code 2."""

    exit_code = 2


class VideoIOError(DeflickerError, OSError):
    """An input cannot be read (missing, corrupt, empty, mixed sizes, NaN) or an output
    cannot be written. Exit code 3."""

    exit_code = 3


class UnknownClipError(InvalidSettingsError):
    """The model server holds no clip of that key (never opened, or dropped with its last
    instance): the caller opens it again. Exit code 2; internal to the plugin's server, so not
    in ``__all__``."""


class ModelLoadError(DeflickerError):
    """Network weights or a cached analysis cannot be loaded. Exit code 4."""

    exit_code = 4


class DeviceError(DeflickerError, RuntimeError):
    """The requested compute device is not available. Exit code 5."""

    exit_code = 5


class Cancelled(DeflickerError):
    """The user or the host cancelled a long operation. Exit code 130."""

    exit_code = 130


__all__ = [
    "DeflickerError",
    "InvalidSettingsError",
    "VideoIOError",
    "ModelLoadError",
    "DeviceError",
    "Cancelled",
]
