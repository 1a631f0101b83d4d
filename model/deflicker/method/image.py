"""Small image helpers shared by every stage: proxy sizes, resizing, colour channels.

Frames are ``(H, W, C)`` float32 arrays, C = 3 (RGB) or 4 (RGBA), in the file's own range
(integers normalized to [0, 1], float files as they are, possibly above 1.0).
"""
from __future__ import annotations

from typing import Union

import cv2
import numpy as np

from deflicker.bands import CACHE_BAND_PIXELS, area_downsample, row_bands
from deflicker.io.clip import to_float


def proxy_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h, w) of a proxy whose long side is ``long_side`` (never upscaled), aspect kept."""
    scale = min(1.0, long_side / max(height, width))
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize (H, W[, C]) float32 to ``shape`` = (h, w): area filter down, linear up."""
    h, w = shape
    if image.shape[:2] == (h, w):
        return np.ascontiguousarray(image, dtype=np.float32)
    down = h <= image.shape[0] and w <= image.shape[1]
    interp = cv2.INTER_AREA if down else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(image, dtype=np.float32), (w, h), interpolation=interp)
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out


def rgb(frame: np.ndarray) -> np.ndarray:
    """The colour channels of a frame (drops alpha), float32, contiguous."""
    return np.ascontiguousarray(frame[..., :3], dtype=np.float32)


class StoredRows:
    """The colour of a frame given as the integer pixels its file stores, read a band of rows at
    a time: ``colour[rows]`` is ``rgb(to_float(pixels))[rows]`` bit for bit, (rows, W, 3) float32
    of its own, and no frame-size float array exists (a 16-bit 4K frame is 50 MB as stored, 100 MB
    as float). It stands in for the (H, W, 3) float colour where work reads it by whole rows only
    (the render's correction, fill and keep): ``shape``, ``ndim``, ``[rows]``, ``min()``, ``max()``."""

    ndim = 3

    def __init__(self, pixels: np.ndarray):
        self.pixels = pixels
        self.shape = (pixels.shape[0], pixels.shape[1], 3)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return rgb(to_float(self.pixels[rows]))

    def min(self) -> float:
        """The colour's smallest value (the float frame's: the conversion keeps the order)."""
        return float(to_float(np.array([self.pixels[..., :3].min()]))[0])

    def max(self) -> float:
        """The colour's largest value (the float frame's)."""
        return float(to_float(np.array([self.pixels[..., :3].max()]))[0])


#: A frame's colour, (H, W, 3): float32, or read by rows from its stored pixels.
Colour = Union[np.ndarray, StoredRows]


def colour_of(frame: np.ndarray) -> Colour:
    """The colour channels of a float frame (:func:`rgb`), or of stored integer pixels by rows (:class:`StoredRows`)."""
    return StoredRows(frame) if frame.dtype.kind == "u" else rgb(frame)


def frame_proxy(frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A full-resolution frame's colour (float, or the integer pixels a file stores: the same
    proxy) area-resampled to ``shape`` (h, w), (h, w, 3) float32 of its own: what :func:`resize`
    makes of the float frame, bit for bit, made a band of rows at a time (no frame-size array)."""
    if frame.shape[:2] == shape:
        return np.array(rgb(to_float(frame)), copy=True)
    return area_downsample(frame, shape, np.float32, lambda rows, out: np.copyto(out, to_float(rows)[..., :3]))


def to_proxy(frame: np.ndarray, long_side: int) -> np.ndarray:
    """RGB proxy of a frame with the given long side, (h, w, 3) float32 (:func:`frame_proxy`)."""
    return frame_proxy(frame, proxy_shape(frame.shape[0], frame.shape[1], long_side))


def luminance(image: np.ndarray) -> np.ndarray:
    """Rec.709 luma of an (H, W, 3) image, (H, W) float32."""
    return (image[..., 0] * 0.2126 + image[..., 1] * 0.7152 + image[..., 2] * 0.0722).astype(np.float32)


def mean_luminance(frame: np.ndarray) -> float:
    """Mean Rec.709 luma of a frame's colour (float, or integer pixels scaled as :func:`to_float`
    scales them), summed a band of rows at a time in float64."""
    h, w = frame.shape[:2]
    bands = row_bands(h, w, CACHE_BAND_PIXELS)
    total = sum(float(luminance(rgb(to_float(frame[rows]))).sum(dtype=np.float64)) for rows in bands)
    return total / (h * w)


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over (2r+1)^2 windows, borders reflected, same shape."""
    return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def local_correlation(a: np.ndarray, b: np.ndarray, radius: int = 3) -> np.ndarray:
    """Local normalized cross-correlation of two (h, w, 3) images' luma over (2r+1)^2 windows,
    (h, w) float32 in [0, 1]: structure agreement, blind to gain and offset."""
    ya, yb = luminance(a), luminance(b)
    ma, mb = _box(ya, radius), _box(yb, radius)
    va = np.maximum(_box(ya * ya, radius) - ma * ma, 0.0)
    vb = np.maximum(_box(yb * yb, radius) - mb * mb, 0.0)
    cov = _box(ya * yb, radius) - ma * mb
    eps = 1e-4
    ncc = (cov + eps) / np.sqrt((va + eps) * (vb + eps))
    return np.clip(ncc, 0.0, 1.0).astype(np.float32)


def local_contrast(image: np.ndarray, radius: int = 3) -> np.ndarray:
    """Standard deviation of an (h, w, 3) image's luma over (2r+1)^2 windows, (h, w) float32."""
    y = luminance(image)
    mean = _box(y, radius)
    return np.sqrt(np.maximum(_box(y * y, radius) - mean * mean, 0.0)).astype(np.float32)
