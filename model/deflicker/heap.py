"""Handing the heap's free pages back to the operating system: :func:`return_free_heap`."""
from __future__ import annotations

import ctypes
from typing import Callable, Optional


def _malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's ``malloc_trim``, None where the C library has none (macOS, Windows, musl)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def return_free_heap() -> None:
    """Give the pages that freed allocations left in the heap back to the OS (glibc; elsewhere
    nothing). glibc keeps what a thread frees in that thread's arena, in pieces between live
    blocks that it returns only when asked; a frame's temporaries, freed by render workers frame
    after frame, otherwise stay resident (tens of MB at 4K)."""
    if _TRIM is not None:
        _TRIM(0)
