"""Row bands: full-resolution per-pixel work done a band of rows at a time, so that a 4K frame's
float temporaries are a few MB each instead of 100 MB.

A band is a slice of whole rows, so a band of a C-contiguous frame is itself contiguous. Its
first pixel sits at a multiple of ALIGN pixels from the frame's start: OpenCV's vector loops
(``cv2.transform``, ``cv2.multiply``) then split a band into the same vector blocks as the
whole frame, so a banded result is bit-identical to the whole-frame one. Only an array's last
few pixels go through a scalar loop; where that loop rounds differently (``cv2.transform`` with
inexact products), a band is computed a few pixels past its end and cut to it
(:func:`with_tail`). Banded work is per pixel, or a resampling whose bands are whole grids of
the factor (:func:`row_grid`): a linear upsampling (:func:`upsampled_rows`) or an area
downsampling (:func:`area_bands`), whose bands resampled alone give the whole frame's bits
(a property of OpenCV's resampling, not a documented promise: tests/test_bands.py checks it
against the whole-frame ``cv2.resize`` for the heights and factors that matter).
"""
from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import cv2
import numpy as np

#: Pixels a band holds, about (1 Mpixel: 12 MB for an RGB float32 band).
BAND_PIXELS = 1 << 20
#: Pixels of a band whose several temporaries should stay in the caches (a quarter Mpixel: 3 MB
#: for an RGB float32 band; the colour transform's upsampled coefficients and products).
CACHE_BAND_PIXELS = 1 << 18
#: Every band starts this many pixels (a multiple) after the frame's first.
ALIGN = 1024
#: More pixels than OpenCV's vector loops leave to their scalar loop at an array's end.
TAIL_PIXELS = 64
#: Source rows a grid of a banded upsampling may span (:func:`banded_upsampling`).
MAX_GRID_ROWS = 8


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


def row_grid(small: int, large: int) -> tuple[int, int]:
    """(q, p): resampling between ``small`` and ``large`` rows (either way) maps every q rows of
    the small image onto p rows of the large (the factor p / q in lowest terms)."""
    common = math.gcd(small, large)
    return small // common, large // common


def area_bands(shape: tuple[int, int], small: tuple[int, int], pixels: int = BAND_PIXELS) -> Iterator[tuple[slice, slice]]:
    """(rows, small rows) of an area downsampling (``cv2.resize``, INTER_AREA) of a frame of
    ``shape`` (H, W) to ``small`` (h, w), covering both once each, in order: whole grids of
    :func:`row_grid`, about ``pixels`` frame pixels a band (one grid at least), so that a band
    resampled alone gives the whole frame's rows bit for bit (where a grid is the whole height,
    as 858 rows onto 107, the one band is the frame)."""
    q, p = row_grid(small[0], shape[0])
    grids, per_band = shape[0] // p, max(1, pixels // (shape[1] * p))
    for top in range(0, grids, per_band):
        bottom = min(grids, top + per_band)
        yield slice(top * p, bottom * p), slice(top * q, bottom * q)


def area_downsample(frame: np.ndarray, shape: tuple[int, int], dtype: type,
                    convert: Callable[[np.ndarray, np.ndarray], object]) -> np.ndarray:
    """``frame`` (H, W, C) area-resampled (``cv2.resize``, INTER_AREA) down to ``shape`` (h, w) as
    (h, w, 3) ``dtype``, the values resampled being ``convert(rows of frame, out)``'s: it writes a
    few rows' (rows, W, 3) values into ``out``. A band of about CACHE_BAND_PIXELS at a time
    (:func:`area_bands`, the whole frame's bits), so no frame-size array exists; where a band is
    the whole frame (a height with no shorter grid), its values go to a reused scratch frame."""
    small: np.ndarray = np.empty((*shape, 3), dtype)
    for rows, out_rows in area_bands(frame.shape[:2], shape, CACHE_BAND_PIXELS):
        band = frame[rows]
        with FRAME_SCRATCH.take(band.shape[:2] + (3,), dtype) as values:
            for sub in row_bands(band.shape[0], band.shape[1], CACHE_BAND_PIXELS):
                convert(band[sub], values[sub])
            size = (shape[1], out_rows.stop - out_rows.start)
            small[out_rows] = cv2.resize(values, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], 3)
    return small


def upsampled_rows(src: np.ndarray, shape: tuple[int, int], rows: slice) -> np.ndarray:
    """Rows ``rows`` of ``src`` (h, w[, C]) float32 upsampled linearly to ``shape`` = (H, W)
    (``cv2.resize``, INTER_LINEAR), bit for bit the whole frame's: only the source rows the band
    reads, one more each side so that none of its rows meets the crop's edge, widened to whole
    grids of :func:`row_grid` (a crop then has the frame's factor, and its rows the frame's
    source rows and weights), are resampled, and the band cut out."""
    q, p = row_grid(src.shape[0], shape[0])
    top = max(0, (rows.start * q // p - 1) // q * q)
    bottom = min(src.shape[0], -(-(-(-rows.stop * q // p) + 1) // q) * q)
    up = cv2.resize(src[top:bottom], (shape[1], (bottom - top) * p // q), interpolation=cv2.INTER_LINEAR)
    first = rows.start - top * p // q
    return up[first:first + rows.stop - rows.start]  # type: ignore[no-any-return]


def banded_upsampling(src_height: int, height: int) -> bool:
    """True when :func:`upsampled_rows` pays: a grid of :func:`row_grid` is at most
    MAX_GRID_ROWS source rows (1920x1080 from 256x144: 2; 2048x858 from 256x107: all 107, so a
    band's crop would be the whole source)."""
    return row_grid(src_height, height)[0] <= MAX_GRID_ROWS


def row_upsampler(src: np.ndarray, shape: tuple[int, int]) -> Callable[[slice], np.ndarray]:
    """``rows -> `` those rows of ``src`` (h, w[, C]) upsampled linearly to ``shape`` (H, W), the
    whole frame's bits: a band at a time (:func:`upsampled_rows`) where that pays
    (:func:`banded_upsampling`), else cut from one whole-frame resize made here."""
    src = np.ascontiguousarray(src, dtype=np.float32)
    if banded_upsampling(src.shape[0], shape[0]):
        return lambda rows: upsampled_rows(src, shape, rows)
    whole = cv2.resize(src, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return lambda rows: whole[rows]  # type: ignore[no-any-return]


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


#: The process's scratch frames: the whole-frame fallbacks of banded work (upsampled colour
#: coefficients where banding does not pay, the code values of a frame with no shorter grid).
FRAME_SCRATCH = ScratchFrames()
