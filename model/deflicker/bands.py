"""Row bands: full-resolution per-pixel work done a band of rows at a time, so that a 4K frame's
float temporaries are a few MB each instead of 100 MB.

A band is a slice of whole rows, so a band of a C-contiguous frame is itself contiguous. Its
first pixel sits at a multiple of ALIGN pixels from the frame's start: OpenCV's vector loops
(``cv2.transform``, ``cv2.multiply``) then split a band into the same vector blocks and scalar
tail as the whole frame, so a banded result is bit-identical to the whole-frame one. Banded
work must be per pixel; resampling (``cv2.resize``) stays whole-frame.
"""
from __future__ import annotations

import math
from typing import Iterator

#: Pixels a band holds, about (1 Mpixel: 12 MB for an RGB float32 band).
BAND_PIXELS = 1 << 20
#: Every band starts this many pixels (a multiple) after the frame's first.
ALIGN = 1024


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
