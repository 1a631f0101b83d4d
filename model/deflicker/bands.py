"""Row bands: full-resolution per-pixel work done a band of rows at a time, so that a 4K frame's
float temporaries are a few MB each instead of 100 MB.

A band is a slice of whole rows, so a band of a C-contiguous frame is itself contiguous. Its
first pixel sits at a multiple of ALIGN pixels from the frame's start: OpenCV's vector loops
(``cv2.transform``, ``cv2.multiply``) then split a band into the same vector blocks as the
whole frame, so a banded result is bit-identical to the whole-frame one. Only an array's last
few pixels go through a scalar loop; where that loop rounds differently (``cv2.transform`` with
inexact products), a band is computed a few pixels past its end and cut to it
(:func:`with_tail`). Banded work must be per pixel; resampling (``cv2.resize``) stays whole-frame.
"""
from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np

#: Pixels a band holds, about (1 Mpixel: 12 MB for an RGB float32 band).
BAND_PIXELS = 1 << 20
#: Every band starts this many pixels (a multiple) after the frame's first.
ALIGN = 1024
#: More pixels than OpenCV's vector loops leave to their scalar loop at an array's end.
TAIL_PIXELS = 64


def band_rows(width: int, pixels: int = BAND_PIXELS) -> int:
    """Rows per band for frames ``width`` wide: about ``pixels`` pixels, a whole number of rows
    whose pixel count is a multiple of ALIGN (1024 rows at most for an odd width)."""
    step = ALIGN // math.gcd(width, ALIGN)
    return max(step, pixels // width // step * step)


def row_bands(height: int, width: int, pixels: int = BAND_PIXELS) -> Iterator[slice]:
    """Slices of consecutive rows covering ``range(height)`` once each, in order, each band
    :func:`band_rows` rows (the last may be shorter)."""
    rows = band_rows(width, pixels)
    for top in range(0, height, rows):
        yield slice(top, min(height, top + rows))


def with_tail(rows: slice, height: int, width: int) -> slice:
    """A band's rows and the next ones holding TAIL_PIXELS more pixels (within the frame's
    ``height``): computed on these and cut back to ``rows``, the band's last pixels are rounded
    by the vector loop, as in the whole frame."""
    return slice(rows.start, min(height, rows.stop + -(-TAIL_PIXELS // width)))


class ScratchFrames:
    """Full-frame scratch buffers handed out and taken back, so a render's frame-sized
    temporaries are not fresh allocations each frame (above glibc's 32 MB mmap ceiling, as 4K
    frames are, each one is mapped and page-faulted anew: ~50 ms per 4K float frame, and the
    faults of two render threads serialize in the kernel).

    Buffers are bytes, handed out as arrays of any dtype: an int16 frame reuses the first half of
    a float32 one. At most ``keep`` idle buffers stay (the largest), only of the latest frame
    size asked for. Thread-safe.
    """

    #: Smaller arrays are plain allocations (proxy-size work never displaces frame-size buffers).
    MIN_BYTES = 16 << 20

    def __init__(self, keep: int = 2):
        self._keep = keep
        self._size: tuple[int, ...] = ()  # the frame size (h, w) the idle buffers were asked for
        self._idle: list[np.ndarray] = []  # uint8 buffers
        self._lock = threading.Lock()

    @contextmanager
    def take(self, shape: tuple[int, ...], dtype: type = np.float32) -> Iterator[np.ndarray]:
        """An array of ``shape`` and ``dtype`` (contents undefined), the caller's until the block
        ends: it shares no bytes with an array another caller holds."""
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes < self.MIN_BYTES:
            yield np.empty(shape, dtype=dtype)  # malloc reuses small blocks itself
            return
        size = tuple(shape[:2])
        with self._lock:
            if size != self._size:
                self._size, self._idle = size, []  # another frame size: its buffers go
            fits = [i for i, b in enumerate(self._idle) if b.nbytes >= nbytes]
            buf = self._idle.pop(min(fits, key=lambda i: self._idle[i].nbytes)) if fits else None
        if buf is None:
            buf = np.empty(nbytes, dtype=np.uint8)
        try:
            yield buf[:nbytes].view(dtype).reshape(shape)
        finally:
            with self._lock:
                if size == self._size:
                    self._idle.append(buf)
                    self._idle.sort(key=lambda b: -b.nbytes)
                    del self._idle[self._keep:]  # the largest stay


#: The process's scratch frames (the render's upsampled coefficients, its flow proxies' input).
FRAME_SCRATCH = ScratchFrames()
