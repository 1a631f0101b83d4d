"""Premultiplied alpha: straight colour for the correction, premultiplied colour back for the host.

A premultiplied RGBA frame stores colour * alpha. The correction must act on the straight colour
(a gain or offset applied to colour * alpha would scale the edges of a matte differently from its
core), so a premultiplied host frame is divided by its alpha before analysis and correction, and
the corrected colour is multiplied by the same alpha after. Alpha itself never changes. Where
alpha is not above 0 there is no straight colour to recover: the colour is left as it is on the way
in and is 0 on the way out (a premultiplied pixel with no coverage holds no colour).
"""
from __future__ import annotations

import numpy as np


def unpremultiply(frame: np.ndarray) -> np.ndarray:
    """Straight colour of a premultiplied (H, W, 4) float frame: a new float32 array, alpha kept."""
    out = np.array(frame, dtype=np.float32, copy=True)
    alpha = out[..., 3:4]
    np.divide(out[..., :3], alpha, out=out[..., :3], where=alpha > 0)
    return out


def premultiply(frame: np.ndarray) -> np.ndarray:
    """Premultiply a straight (H, W, 4) float32 frame in place (colour 0 where alpha <= 0); returns it."""
    alpha = frame[..., 3:4]
    frame[..., :3] *= np.where(alpha > 0, alpha, np.float32(0.0))
    return frame
