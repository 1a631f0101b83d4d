"""Progress and cancellation callbacks shared by every long operation.

A long step takes ``progress: Progress | None`` (called with a fraction in [0, 1] and a short
label) and ``cancel: CancelCheck | None`` (returns True when the caller wants to stop). The CLI
backs them with tqdm and Ctrl-C, the OFX bridge with the host's progress suite and ``abort``.
"""
from __future__ import annotations

from typing import Callable, Optional

from deflicker.errors import Cancelled

Progress = Callable[[float, str], None]
CancelCheck = Callable[[], bool]


def report(progress: Optional[Progress], fraction: float, label: str) -> None:
    """Call ``progress`` if given, clamping the fraction to [0, 1]."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), label)


def check_cancel(cancel: Optional[CancelCheck]) -> None:
    """Raise :class:`Cancelled` when ``cancel`` says so."""
    if cancel is not None and cancel():
        raise Cancelled("cancelled")


def scaled(progress: Optional[Progress], start: float, end: float) -> Optional[Progress]:
    """A progress callback mapping [0, 1] onto [start, end] of ``progress``."""
    if progress is None:
        return None

    def inner(fraction: float, label: str) -> None:
        progress(start + (end - start) * fraction, label)

    return inner
