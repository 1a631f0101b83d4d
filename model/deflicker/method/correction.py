"""Apply the filter's per-pixel affine colour transform, at proxy or full resolution.

Coefficients are (h, w, 12) float32 at proxy resolution: channels 0..8 hold the 3x3 matrix M
row-major (``M[c, k]`` at ``3 * c + k``), channels 9..11 the offset b, in proxy units. A pixel
maps as ``out_c = sum_k M[c, k] * in_k + b_c * scale``. Coefficients are smooth, so upsampling
them bilinearly keeps every full-resolution detail of the input. Values are never clipped.
"""
from __future__ import annotations

from typing import Callable, Optional

import cv2
import numpy as np

from deflicker.bands import CACHE_BAND_PIXELS, FRAME_SCRATCH, banded_upsampling, row_bands, row_upsampler, upsampled_rows, with_tail
from deflicker.errors import InvalidSettingsError
from deflicker.method.image import Colour

#: Identity transform as a 12-vector (M = I, b = 0).
IDENTITY = np.array([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0], dtype=np.float32)
#: Sums the three channels of an interleaved image (cv2.transform matrix).
_SUM3 = np.ones((1, 3), dtype=np.float32)


def identity_coefficients(h: int, w: int) -> np.ndarray:
    """Coefficients that leave an image unchanged, (h, w, 12) float32."""
    return np.broadcast_to(IDENTITY, (h, w, 12)).copy()


def blend_strength(coeffs: np.ndarray, strength: float) -> np.ndarray:
    """Coefficients moved toward identity: I + strength * (C - I), (h, w, 12) float32."""
    if strength == 1.0:
        return np.ascontiguousarray(coeffs, dtype=np.float32)
    return (IDENTITY + np.float32(strength) * (coeffs - IDENTITY)).astype(np.float32)


def _check(image: Colour, coeffs: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidSettingsError(f"image must be (H, W, 3), not {image.shape}")
    if coeffs.ndim != 3 or coeffs.shape[2] != 12:
        raise InvalidSettingsError(f"coefficients must be (h, w, 12), not {coeffs.shape}")


def _upsample(coeffs: np.ndarray, shape: tuple[int, int], dst: np.ndarray) -> np.ndarray:
    """Bilinear (cv2.resize) upsampling of (h, w, 3) coefficients into ``dst`` (H, W, 3) float32."""
    src = np.ascontiguousarray(coeffs, dtype=np.float32)
    if src.shape[:2] == shape:
        dst[...] = src
        return dst
    return cv2.resize(src, (shape[1], shape[0]), dst=dst, interpolation=cv2.INTER_LINEAR)


def _transform(image: np.ndarray, coeffs: np.ndarray, scale: float) -> np.ndarray:
    """sum_k M_ck * image_k + b_c * scale with coefficients upsampled to the image, (H, W, 3) float32:
    the bands of :func:`_banded_transform` put together, or :func:`_transform_whole`."""
    rows_of = _banded_transform(image, coeffs, scale)
    if rows_of is None:
        return _transform_whole(image, coeffs, scale)
    out = np.empty(image.shape, dtype=np.float32)
    for rows in row_bands(image.shape[0], image.shape[1], CACHE_BAND_PIXELS):
        rows_of(rows, out[rows])
    return out


def _banded_transform(image: Colour, coeffs: np.ndarray,
                      scale: float) -> Optional[Callable[[slice, np.ndarray], np.ndarray]]:
    """:func:`_transform` a row band at a time: ``(rows, out) -> out`` writes rows ``rows`` of the
    result into ``out`` (rows, W, 3) float32, reading only ``image[rows]`` when called.

    Works on interleaved channels with cv2 (multiply, channel sum, merge), the coefficients
    upsampled for the band alone (:func:`upsampled_rows`), so the band's work stays in the cache
    and no full-size temporary exists. None where banding the upsampling does not pay
    (:func:`~deflicker.bands.banded_upsampling`) and at the coefficients' own size (a proxy:
    nothing to upsample): there :func:`_transform_whole` gives the same bits.
    """
    shape = image.shape[:2]
    if coeffs.shape[:2] == shape or not banded_upsampling(coeffs.shape[0], shape[0]):
        return None
    gains = [np.ascontiguousarray(coeffs[..., 3 * c:3 * c + 3], dtype=np.float32) for c in range(3)]
    offsets = np.ascontiguousarray(coeffs[..., 9:12] * np.float32(scale), dtype=np.float32)

    def rows_of(rows: slice, out: np.ndarray) -> np.ndarray:
        cv2.merge([_channel(upsampled_rows(g, shape, rows), image[rows]) for g in gains], dst=out)
        return cv2.add(out, upsampled_rows(offsets, shape, rows), dst=out)  # type: ignore[no-any-return]

    return rows_of


def _transform_whole(image: Colour, coeffs: np.ndarray, scale: float) -> np.ndarray:
    """:func:`_transform` with each coefficient triple upsampled over the whole frame at once, into
    one full-size buffer reused across frames (the products and sums still a band at a time)."""
    shape = image.shape[:2]
    out = np.empty(image.shape, dtype=np.float32)
    with FRAME_SCRATCH.take(image.shape) as buf:
        for c in range(3):
            gains = _upsample(coeffs[..., 3 * c:3 * c + 3], shape, buf)
            for rows in row_bands(*shape):
                out[rows, :, c] = _channel(gains[rows], image[rows])
        offsets = _upsample(coeffs[..., 9:12] * np.float32(scale), shape, buf)
        for rows in row_bands(*shape):
            cv2.add(out[rows], offsets[rows], dst=out[rows])  # in place, without numpy's strided loop
    return out


def _channel(gains: np.ndarray, image: np.ndarray) -> np.ndarray:
    """One output channel, sum_k gains_k * image_k, (rows, W) float32; ``gains`` (rows, W, 3) is
    overwritten with the products."""
    return cv2.transform(cv2.multiply(gains, image, dst=gains), _SUM3)  # type: ignore[no-any-return]


def apply_affine(image: np.ndarray, coeffs: np.ndarray, *, scale: float = 1.0, strength: float = 1.0) -> np.ndarray:
    """Apply proxy coefficients (h, w, 12) to a full-resolution (H, W, 3) float32 image.

    Coefficients are upsampled bilinearly (``cv2.resize``); offsets are multiplied by ``scale``
    (full-resolution units per proxy unit). ``strength`` blends toward identity; 0 returns a
    bit-exact copy. Returns (H, W, 3) float32, never clipped. 1080p takes ~0.05 s on 2 cores.
    """
    _check(image, coeffs)
    image = np.ascontiguousarray(image, dtype=np.float32)
    if strength == 0.0:
        return image.copy()
    return _transform(image, blend_strength(coeffs, strength), scale)


def affine_rows(image: Colour, coeffs: np.ndarray, *, scale: float = 1.0,
                strength: float = 1.0) -> Callable[[slice], np.ndarray]:
    """:func:`apply_affine` a row band at a time, the same bits: ``rows ->`` those rows of the
    result, (rows, W, 3) float32 of its own (strength > 0; ``image`` contiguous float32, or read by
    rows from stored pixels: :class:`~deflicker.method.image.StoredRows`), made from
    ``image[rows]`` as it is when called, so a caller may write each band's result back into
    ``image`` once it is made (where the whole result is made at once, it is made here, before any
    band is asked for)."""
    _check(image, coeffs)
    coeffs = blend_strength(coeffs, strength)
    rows_of = _banded_transform(image, coeffs, scale)
    if rows_of is None:
        whole = _transform_whole(image, coeffs, scale)
        return lambda rows: whole[rows]  # type: ignore[no-any-return]
    return lambda rows: rows_of(rows, np.empty((rows.stop - rows.start, *image.shape[1:]), np.float32))


def apply_to_proxy(proxy: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Apply coefficients to the (h, w, 3) proxy they were computed for, (h, w, 3) float32."""
    _check(proxy, coeffs)
    if proxy.shape[:2] != coeffs.shape[:2]:
        raise InvalidSettingsError(f"proxy {proxy.shape[:2]} and coefficients {coeffs.shape[:2]} differ in size")
    return _transform(np.ascontiguousarray(proxy, dtype=np.float32), coeffs, 1.0)


#: Input values within this of 0 or 1 start counting as clipped (fully at CLIP_RAMP / 2).
CLIP_RAMP = 0.03


def colour_bound(image: np.ndarray, colour: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """The frame's pixels under its fitted global colour transform ``colour`` (a 12-vector, see
    the module doc), moved from ``image`` by ``strength``: (H, W, 3) float32. Where the input is
    crushed it bounds the scene's value in the shot's appearance from above."""
    matrix = np.asarray(colour[:9], np.float32).reshape(3, 3)
    full: np.ndarray = cv2.transform(np.ascontiguousarray(image, dtype=np.float32), matrix)
    full += np.asarray(colour[9:12], np.float32)
    full -= image  # image + strength * (full - image), in place: one array, the same bits
    full *= np.float32(strength)
    full += image
    return full


def fill_clipped(corrected: np.ndarray, image: np.ndarray, guide: np.ndarray, *, strength: float = 1.0,
                 bound: Optional[np.ndarray] = None) -> np.ndarray:
    """Clipped highlights of a display-referred frame filled from the guide; crushed shadows
    held under the bound the frame's own pixels set.

    Where an input channel sits at 1 the corrected value is only a lower bound of the scene's
    (the flicker pushed it past white), so the output takes the larger of it and the guide,
    whose texture comes from the frames that saw that detail. Where it sits at 0 the frame says
    only "at most this dark": the output takes the smaller of the correction and ``bound``'s
    value, the frame's pixel under its fitted global colour transform (a 12-vector,
    :func:`colour_bound`; None: the correction alone), and never the guide, so neither a local
    lift nor the guide's structure from other frames shows in a black area (the letterbox
    ghosts of issue 13). Clipped channels keep the filter's local correction below the global
    bound: under local flicker it rightly moves past the global fit (forcing that bound there
    cost the mains clip 8% in Ewarp). ``corrected`` and ``image`` are (H, W, 3) full
    resolution, ``guide`` (h, w, 3) at proxy resolution, upsampled only when a pixel needs it.
    Returns ``corrected`` itself, (H, W, 3) float32, filled in place a row band at a time.
    """
    fill = clipped_filler(image, guide, strength=strength, bound=bound)
    if fill is not None:
        for rows in row_bands(*image.shape[:2]):
            fill(rows, corrected[rows])  # per pixel: band temporaries only, written into ``corrected``
    return corrected


def clipped_filler(image: Colour, guide: np.ndarray, *, strength: float = 1.0,
                   bound: Optional[np.ndarray] = None) -> Optional[Callable[[slice, np.ndarray], None]]:
    """:func:`fill_clipped` a row band at a time: ``(rows, corrected)`` fills the band's
    corrected pixels (rows, W, 3) in place, reading ``image`` at those rows and the few after
    them (:func:`_band_colour_bound`), so a caller writing results back into ``image`` must go
    down the frame; None when nothing in ``image`` is near 0 or 1 (nothing to fill)."""
    if float(image.max()) <= 1.0 - CLIP_RAMP and float(image.min()) >= CLIP_RAMP:
        return None  # the common case, without a full-size temporary
    up = row_upsampler(guide, image.shape[:2])

    def fill(rows: slice, corrected: np.ndarray) -> None:
        under = None if bound is None else _band_colour_bound(image, rows, bound, strength)
        _fill_band(corrected, image[rows], up(rows), strength, under)

    return fill


def _band_colour_bound(image: Colour, rows: slice, colour: np.ndarray, strength: float) -> np.ndarray:
    """:func:`colour_bound` of ``image[rows]``, bit for bit the whole frame's: computed past the
    band's end (:func:`deflicker.bands.with_tail`), then cut to it."""
    return colour_bound(image[with_tail(rows, *image.shape[:2])], colour, strength)[:rows.stop - rows.start]


def _fill_band(corrected: np.ndarray, image: np.ndarray, up: np.ndarray, strength: float,
               under: Optional[np.ndarray]) -> None:
    """:func:`fill_clipped` on a band of rows, in place in ``corrected``; ``up`` is the guide
    upsampled to the band, ``under`` the band's :func:`colour_bound` (None: no bound)."""
    # Each step in place in one of three band-size arrays (the expressions' own bits: float32
    # throughout, sums and products in the same operands).
    high = np.subtract(image, 1.0 - CLIP_RAMP)
    high /= CLIP_RAMP / 2
    np.clip(high, 0.0, 1.0, out=high)
    low = np.subtract(CLIP_RAMP, image)
    low /= CLIP_RAMP / 2
    np.clip(low, 0.0, 1.0, out=low)
    target = np.subtract(up, corrected)  # corrected + strength * (up - corrected)
    target *= np.float32(strength)
    target += corrected
    filled = np.maximum(corrected, target, out=target)  # where high > 0; elsewhere the dark value:
    dark = high <= 0
    np.copyto(filled, corrected, where=dark)
    if under is not None:
        np.minimum(filled, under, out=filled, where=dark)
    weight = np.maximum(high, low, out=low)
    filled -= corrected  # corrected + weight * (filled - corrected)
    filled *= weight
    corrected += filled
