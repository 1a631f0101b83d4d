"""Building atlas textures: bilinear splatting of frame pixels, hole filling, and which pixels
are clipped (and so say nothing about the scene)."""
from __future__ import annotations

import cv2
import numpy as np

from deflicker.method.correction import CLIP_RAMP

#: Display-referred proxy values at or beyond which a channel counts as clipped (or crushed
#: at 1 - CLIPPED): it only bounds the scene there, so the colour fit censors it and a texture
#: takes those texels from the frames that did see them (or from the tightest bound).
CLIPPED = 1.0 - CLIP_RAMP / 2  # where correction.fill_clipped fills fully


def censored(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) display-referred pixels -> (clipped, crushed), each (..., 3) bool (CLIPPED)."""
    return pixels >= CLIPPED, pixels <= 1.0 - CLIPPED


def unclipped(pixels: np.ndarray) -> np.ndarray:
    """(..., 3) display-referred pixels -> (...,) bool: no channel clipped or crushed (CLIPPED)."""
    return (pixels.max(-1) < CLIPPED) & (pixels.min(-1) > 1.0 - CLIPPED)  # type: ignore[no-any-return]


def normalize_colour(pixels: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Undo one frame's colour transform ``colour`` = (gains, offsets), (2, 3): (P - b) / g."""
    return ((pixels - colour[1]) / colour[0]).astype(np.float32)


def canvas_box(points: np.ndarray, h: int, w: int, max_canvas: float) -> tuple[np.ndarray, float, tuple[int, int]]:
    """(lo, scale, (Ha, Wa)) of a texture holding ``points`` (k, 2) texture positions with a
    2-texel margin: texture = (position - lo) * scale, at most ``max_canvas`` (h, w) frame areas
    (a long pan gets a coarser texture, never a huge one)."""
    lo, hi = points.min(0) - 2.0, points.max(0) + 2.0
    scale = min(1.0, float(np.sqrt(max_canvas * h * w / np.prod(hi - lo + 1))))
    return lo, scale, (int(np.ceil((hi[1] - lo[1]) * scale)) + 2, int(np.ceil((hi[0] - lo[0]) * scale)) + 2)


def clipped_amount(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) display-referred pixels -> (high, low), each (..., 3) float32 in [0, 1]: how far
    each channel is into clipping and into crushing, over the ramp of
    :func:`deflicker.method.correction.fill_clipped`."""
    high = np.clip((pixels - (1.0 - CLIP_RAMP)) / (CLIP_RAMP / 2), 0.0, 1.0).astype(np.float32)
    low = np.clip((CLIP_RAMP - pixels) / (CLIP_RAMP / 2), 0.0, 1.0).astype(np.float32)
    return high, low


def splat(acc: np.ndarray, mx: np.ndarray, my: np.ndarray, pixels: np.ndarray, weight: np.ndarray,
          canvas: tuple[int, int]) -> None:
    """Add one frame's pixels bilinearly at texture positions (``mx``, ``my``), (h, w) each, into
    ``acc`` (4, Ha * Wa): weighted RGB sums in rows 0-2, the weights in row 3. ``pixels`` (h*w, 3)
    and ``weight`` (h*w,) follow the frame's pixels in raster order."""
    ha, wa = canvas
    x0 = np.clip(np.floor(mx).astype(int), 0, wa - 2)
    y0 = np.clip(np.floor(my).astype(int), 0, ha - 2)
    fx = np.clip(mx - x0, 0, 1).ravel()
    fy = np.clip(my - y0, 0, 1).ravel()
    base = (y0 * wa + x0).ravel()
    for off, wgt in ((0, (1 - fx) * (1 - fy)), (1, fx * (1 - fy)), (wa, (1 - fx) * fy), (wa + 1, fx * fy)):
        idx, wgt = base + off, wgt * weight
        acc[3] += np.bincount(idx, wgt, ha * wa)
        for c in range(3):
            acc[c] += np.bincount(idx, wgt * pixels[:, c], ha * wa)


def bound_texels(bound: np.ndarray, mx: np.ndarray, my: np.ndarray, values: np.ndarray, where: np.ndarray,
                 canvas: tuple[int, int], *, high: bool) -> None:
    """Fold one frame's clipped (``high``: running max) or crushed (running min) ``values``
    (h*w, 3) into ``bound`` (3, Ha * Wa) at the nearest texels, where ``where`` (h*w, 3) holds:
    the tightest bound the shot's frames give each texel's channel."""
    ha, wa = canvas
    idx = (np.clip(np.rint(my), 0, ha - 1).astype(int) * wa + np.clip(np.rint(mx), 0, wa - 1).astype(int)).ravel()
    fold = np.maximum.at if high else np.minimum.at
    for c in range(3):
        on = where[:, c]
        fold(bound[c], idx[on], values[on, c])


def fill_holes(texture: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Texels no frame reached take the normalized-blur of their neighbours (no black seams)."""
    known = (weight > 1e-6).astype(np.float32)
    if known.all():
        return texture
    filled = texture.copy()
    for sigma in (1.0, 3.0, 9.0):
        num = cv2.GaussianBlur((texture * known[..., None]).astype(np.float32), (0, 0), sigma)
        den = cv2.GaussianBlur(known, (0, 0), sigma)[..., None]
        hole = (known < 0.5)[..., None] & (den > 1e-3)
        filled = np.where(hole & (filled == 0), num / np.maximum(den, 1e-6), filled)
    return filled
