"""Blind video deflickering: a flawed atlas, a neural filter, a stateless local refinement.

The one API everything uses is :class:`Engine`: ``Engine(settings).open(clip) -> Session``,
``session.analyze(progress, cancel)``, ``session.render(t)``.
"""
from __future__ import annotations

__version__ = "0.1.0"

from deflicker import errors as _errors  # noqa: E402
from deflicker.errors import (  # noqa: E402
    Cancelled,
    DeflickerError,
    DeviceError,
    InvalidSettingsError,
    ModelLoadError,
    VideoIOError,
)
from deflicker.settings import Settings  # noqa: E402


def __getattr__(name: str):  # lazy: torch-heavy modules load only when used
    if name in ("Engine", "Session"):
        from deflicker import engine

        return getattr(engine, name)
    raise AttributeError(name)


__all__ = ["__version__", "Engine", "Session", "Settings", *_errors.__all__]
