"""What every file-backed clip shares: frame-range selection, the frames' timing, a small LRU of
decoded frames (kept as the file stores them, bounded in bytes), iteration, closing, and the
conversion between integer pixels and float frames.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from deflicker.bands import row_bands
from deflicker.errors import InvalidSettingsError, VideoIOError
from deflicker.io.source import ClipInfo, check_frame, check_shape

MAXVAL = {8: 255, 16: 65535}
#: The integer type of pixels stored at 8 and 16 bits.
STORED_TYPES: dict[int, type] = {8: np.uint8, 16: np.uint16}
#: Upper bound, in bytes, of the decoded frames one clip keeps (as stored: a 16-bit 4K frame is
#: 50 MB, five of them fit).
CACHE_BYTES = 256 * 1024 * 1024


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 / uint16 pixels -> float32 in [0, 1] (a new array); float pixels -> float32 as
    stored (the array itself when it is float32)."""
    if pixels.dtype == np.uint8 or pixels.dtype == np.uint16:
        out = pixels.astype(np.float32)
        out /= np.float32(MAXVAL[8 if pixels.dtype == np.uint8 else 16])  # in place: one frame-sized array
        return out
    if pixels.dtype.kind == "f":
        return pixels.astype(np.float32, copy=False)
    raise VideoIOError(f"unsupported pixel type {pixels.dtype}")


def quantize(frame: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float frame -> uint8 (8) or uint16 (16): clip to [0, 1], scale, round half to even; a
    frame already of that type is returned as it is.

    Converts a band of rows at a time (:mod:`deflicker.bands`): its float temporaries are a
    few MB at any frame size.
    """
    dtype = STORED_TYPES[bit_depth]
    if frame.dtype == dtype:
        return frame
    if frame.dtype.kind != "f":
        raise VideoIOError(f"cannot store {frame.dtype} pixels as {bit_depth}-bit")
    maxval = np.float32(MAXVAL[bit_depth])
    out: np.ndarray = np.empty(frame.shape, dtype=dtype)
    for rows in row_bands(frame.shape[0], frame.shape[1]):
        band = np.clip(frame[rows], 0.0, 1.0)
        band *= maxval
        out[rows] = np.rint(band, out=band)
    return out


def bit_depth_of(pixels: np.ndarray) -> int:
    """8, 16 or 32 for uint8, uint16 or float pixels."""
    if pixels.dtype == np.uint8:
        return 8
    if pixels.dtype == np.uint16:
        return 16
    if pixels.dtype.kind == "f":
        return 32
    raise VideoIOError(f"unsupported pixel type {pixels.dtype}")


def frame_rate(fps: float) -> Fraction:
    """fps as an exact rational (29.97002997 -> 30000/1001)."""
    if not fps > 0:
        raise InvalidSettingsError(f"frame rate must be positive, got {fps}")
    return Fraction(fps).limit_denominator(100_000)


def select_range(frame_count: int, start: int, end: Optional[int], what: str) -> tuple[int, int]:
    """Validate ``[start, end)`` (end exclusive, None = to the end) against a clip's length."""
    stop = frame_count if end is None else end
    if not 0 <= start < frame_count or not start < stop <= frame_count:
        raise InvalidSettingsError(
            f"frame range {start}:{'' if end is None else end} is outside {what} ({frame_count} frames)")
    return start, stop


@dataclass(frozen=True)
class Timing:
    """When a clip's frames are shown, for outputs that keep it (variable frame rate, gaps).

    ``stamps[k]`` is frame k's presentation time in the input, in ``time_base`` seconds (a
    video's pts, a sequence's frame numbers at 1/fps); an output shows it at
    ``stamps[k] - offset``. ``end`` is the input time at which the selected frames stop (the
    next frame's stamp), None when they run to the end of the file.
    """

    stamps: tuple[int, ...]
    time_base: Fraction
    offset: int = 0
    end: Optional[int] = None

    def seconds(self, stamp: int) -> float:
        """An input stamp in seconds."""
        return float(stamp * self.time_base)


class Clip:
    """A lazily decoded, random-access clip (a :class:`deflicker.io.source.FrameSource`).

    Subclasses give the whole file's :class:`ClipInfo`, its frames' ``stamps`` in ``time_base``
    units (default: frame numbers at 1/fps) and ``_read(i) -> (H, W, C)`` pixels as the file
    stores them (uint8, uint16 or float) for file frame ``i``; this class maps ``clip[i]`` onto
    frame ``start + i``, validates frames, keeps the last CACHE_BYTES of them in that storage
    type and hands out float32 copies; it is thread safe. ``timing`` says when the selected frames are shown: the first
    at ``origin`` (default: the file's first stamp), the others at their distances from it;
    ``audio`` names the file whose audio streams go with them (None: no audio). Use it as a
    context manager (or call ``close``).
    """

    audio: Optional[Path] = None
    #: Every frame handed out is a new array the caller owns (:func:`deflicker.io.source.owns_frames`).
    hands_out_copies = True

    def __init__(self, info: ClipInfo, start: int = 0, end: Optional[int] = None, *,
                 stamps: Optional[Sequence[int]] = None, time_base: Optional[Fraction] = None,
                 origin: Optional[int] = None):
        self._start, stop = select_range(info.frame_count, start, end, info.path)
        self.info = replace(info, frame_count=stop - self._start)
        stamps = list(range(info.frame_count)) if stamps is None else list(stamps)
        self.timing = Timing(stamps=tuple(stamps[self._start:stop]),
                             time_base=time_base or 1 / frame_rate(info.fps),
                             offset=stamps[self._start] - (stamps[0] if origin is None else origin),
                             end=stamps[stop] if stop < len(stamps) else None)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()

    def _read(self, index: int) -> np.ndarray:
        """File frame ``index`` as (H, W, C) pixels in their storage type (uint8, uint16, float)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self.info.frame_count

    def __getitem__(self, index: int) -> np.ndarray:
        return self._float(index, *self._pixels(index))

    def file_pixels(self, index: int) -> np.ndarray:
        """Frame ``index`` as the file stores it: uint8 / uint16 pixels, read-only (the cache's
        own array, no copy), for work that reads a frame a band of rows at a time (:func:`to_float`
        of a band gives those rows of ``self[index]`` bit for bit); a float file's frame as
        ``self[index]`` gives it."""
        pixels, cached = self._pixels(index)
        if pixels.dtype.kind != "u":
            return self._float(index, pixels, cached)
        if not cached:
            check_shape(pixels, self.info, index)
        view = pixels.view()
        view.flags.writeable = False
        return view

    def _pixels(self, index: int) -> tuple[np.ndarray, bool]:
        """(file frame ``start + index`` as the file stores it, whether it came from the cache):
        decoded under the lock; integer pixels of the clip's shape are kept at once, so a thread
        asking for the frame next finds it instead of decoding it again."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} outside 0..{len(self) - 1}")
        with self._lock:  # the decoder and the cache; conversions run outside, in parallel
            pixels = self._cache.get(index)
            if pixels is not None:
                self._cache.move_to_end(index)
                return pixels, True
            pixels = self._read(self._start + index)
            if pixels.dtype.kind == "u" and pixels.shape == self.info.shape:
                self._keep(index, pixels)
        return pixels, False

    def _float(self, index: int, pixels: np.ndarray, cached: bool) -> np.ndarray:
        """Frame ``index`` as a float32 frame of the caller's own, from its pixels as :meth:`_pixels`
        gave them (checked when just decoded; float pixels are kept once checked)."""
        if cached:
            return to_float(pixels) if pixels.dtype.kind == "u" else pixels.copy()  # callers may modify theirs
        frame = check_frame(to_float(pixels), self.info, index)
        if pixels.dtype.kind != "u":
            with self._lock:
                self._keep(index, frame.copy())
        return frame

    def _keep(self, index: int, pixels: np.ndarray) -> None:
        """Cache a frame's pixels, evicting the least recently used beyond CACHE_BYTES (the
        newest frame is kept whatever its size)."""
        previous = self._cache.pop(index, None)  # two threads may have decoded the same frame
        self._cached_bytes += pixels.nbytes - (0 if previous is None else previous.nbytes)
        self._cache[index] = pixels
        while self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
            self._cached_bytes -= self._cache.popitem(last=False)[1].nbytes

    def frame_number(self, index: int) -> int:
        """The number of frame ``index`` in its file: its position there, counted from 0."""
        return self._start + index

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    def close(self) -> None:
        """Release the file handles and cached frames (idempotent)."""
        self._cache.clear()
        self._cached_bytes = 0

    def __enter__(self) -> "Clip":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
