"""Static regions: pixels a shot never changes (letterbox and pillarbox bars, a film gate, a
black background, a white title card), passed through to the output exactly.

A censored pixel (near 0 or near 1) only bounds the scene, and a region that is black (white)
in every frame of a shot, or constant over the whole shot, is content: no flicker lives there,
so the correction must not lift it, the filter's guide must not paint other frames' structure
into it, and the output must equal the input there. The analysis finds such regions per shot at
proxy resolution (:func:`static_mask`); a render turns the shot's mask into a full-resolution
pass-through weight (:func:`passthrough_bands`) and blends the input back in
(:func:`keep_static`). Inside the proxy mask the weight is 1; across the mask's edge (one proxy
pixel) it stays 1 where the full-resolution pixel is itself black or white, so a bar is exact up
to its own anti-aliased edge.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional

import cv2
import numpy as np

from deflicker.bands import row_bands, row_upsampler
from deflicker.method.atlas.texture import clipped_amount
from deflicker.method.correction import CLIP_RAMP
from deflicker.method.image import Colour

#: A proxy pixel whose every channel stays within this range over a shot is constant (proxy units;
#: above 8-bit and lossy-coding noise, far below any flicker worth correcting).
STATIC_RANGE = 0.01
#: Shots shorter than this have no constant regions (one or two frames are "constant" everywhere);
#: black and white regions count in shots of any length.
MIN_CONSTANT_FRAMES = 3


def static_mask(proxies: np.ndarray, *, display: bool) -> np.ndarray:
    """(h, w) bool of a shot's proxies (n, h, w, 3): pixels whose every channel stays within
    STATIC_RANGE over the shot (MIN_CONSTANT_FRAMES or more frames), or, for display-referred
    clips, sits within CLIP_RAMP of 0 (of 1) in every channel of every frame."""
    darkest = np.full((*proxies.shape[1:3], 3), np.inf, np.float32)
    brightest = np.full((*proxies.shape[1:3], 3), -np.inf, np.float32)
    for frame in proxies:  # one frame at a time: a shot's proxies are float16, never copied whole
        f = frame.astype(np.float32)
        np.minimum(darkest, f, out=darkest)
        np.maximum(brightest, f, out=brightest)
    low = darkest.min(axis=-1)
    high = brightest.max(axis=-1)
    constant = (brightest - darkest).max(axis=-1) <= STATIC_RANGE
    mask = constant if len(proxies) >= MIN_CONSTANT_FRAMES else np.zeros(low.shape, bool)
    if display:
        mask |= (high <= CLIP_RAMP) | (low >= 1.0 - CLIP_RAMP)
    return mask  # type: ignore[no-any-return]


def _extreme(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1]: how fully every channel of a display-referred pixel is black
    (or every channel white), over the clipping ramp of :func:`atlas_texture.clipped_amount`."""
    _, black = clipped_amount(image.max(axis=-1))
    white, _ = clipped_amount(image.min(axis=-1))
    return np.maximum(black, white)


def passthrough_bands(mask: np.ndarray, image: np.ndarray, *,
                      display: bool) -> Iterator[tuple[slice, np.ndarray]]:
    """The full-resolution pass-through weight of a proxy ``mask`` (h, w) for the (H, W, 3) frame
    ``image``, a row band at a time (:mod:`deflicker.bands`): (rows, (rows, W) float32 in [0, 1]),
    nothing where the mask is empty (nothing to keep)."""
    weight = _weight_rows(mask, image, display=display)
    if weight is not None:
        for rows in row_bands(*image.shape[:2]):  # temporaries of a few MB
            yield rows, weight(rows)


def _weight_rows(mask: np.ndarray, image: Colour, *, display: bool) -> Optional[Callable[[slice], np.ndarray]]:
    """``rows ->`` the pass-through weight's rows (:func:`passthrough_bands`), reading ``image``
    at those rows when called; None where the mask is empty."""
    if not mask.any():
        return None
    shape = image.shape[:2]
    proxy = mask.astype(np.float32)
    weight = row_upsampler(proxy, shape)
    ring = row_upsampler(cv2.dilate(proxy, np.ones((3, 3), np.uint8)), shape) if display else None

    def rows_of(rows: slice) -> np.ndarray:
        band = weight(rows)
        if ring is not None:  # how clipped: black or white pixels next to the mask pass through whole
            np.maximum(band, ring(rows) * _extreme(image[rows]), out=band)
        return band  # type: ignore[no-any-return]

    return rows_of


def keep_static(corrected: np.ndarray, image: np.ndarray, mask: Optional[np.ndarray], *, display: bool) -> np.ndarray:
    """``corrected`` (H, W, 3) with frame ``image``'s own pixels blended back in by the
    pass-through weight of the shot's proxy ``mask`` (:func:`passthrough_bands`); exactly
    ``image`` where the weight is 1. Returns ``corrected`` itself, blended in place a row band
    at a time, at the pixels the weight touches only."""
    keep = static_keeper(mask, image, display=display)
    if keep is not None:
        for rows in row_bands(*image.shape[:2]):
            keep(rows, corrected[rows])
    return corrected


def static_keeper(mask: Optional[np.ndarray], image: Colour, *,
                  display: bool) -> Optional[Callable[[slice, np.ndarray], None]]:
    """:func:`keep_static` a row band at a time: ``(rows, corrected)`` blends ``image``'s rows
    into the band's corrected pixels (rows, W, 3) in place, reading ``image`` at those rows only;
    None when the shot has no static regions."""
    weight_of = None if mask is None else _weight_rows(mask, image, display=display)
    if weight_of is None:
        return None

    def keep(rows: slice, corrected: np.ndarray) -> None:
        # Only the pixels the weight touches (bars and scattered clipped texels are a small share
        # of a frame): the blend's cost follows the static area, not the frame size.
        weight = weight_of(rows)
        touched = np.flatnonzero(weight > 0.0)
        if touched.size == 0:
            return
        w = weight.reshape(-1)[touched][:, None]
        src = image[rows].reshape(-1, 3)[touched]
        band = corrected.reshape(-1, 3)
        old = band[touched]
        band[touched] = np.where(w >= 1.0, src, (old + w * (src - old)).astype(np.float32))

    return keep
