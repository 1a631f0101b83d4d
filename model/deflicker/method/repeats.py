"""Repeated frames: film transferred at a higher frame rate, pulldown, held frames.

After lossy coding a repeat is near-identical, not bit-identical, so the analysis maps a frame
to the previous distinct frame when their proxies differ by less than the frame's own noise
and coding error could explain (:func:`is_repeat`); exact repeats anywhere in the clip map by
the hash of their proxy (:func:`exact_key`). A repeat renders as its first occurrence, so the
output repeats it exactly.
"""
from __future__ import annotations

import hashlib

import cv2
import numpy as np

#: Immerkaer's noise operator (the difference of two Laplacians: blind to ramps and to edges'
#: first order), normalized below to the standard deviation of white noise.
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
#: Two independent noise draws of std s differ by 1.13 s on average (|N(0, 2 s^2)|): a repeat,
#: coded again, differs by about that much (coding error and quantization are its noise), a new
#: frame by its motion and flicker too. Frames closer than this many noise stds are repeats.
REPEAT_NOISE = 1.5
#: ... and never more than this mean absolute difference (clip units), whatever the noise says:
#: a strongly textured frame must not hide a small motion.
REPEAT_MAX = 2.0 / 255.0


def noise_level(proxy: np.ndarray) -> float:
    """Standard deviation of a proxy's noise and coding error (Immerkaer 1996, on the channel
    mean), clip units; 0 for a proxy under 3x3 pixels."""
    y = np.asarray(proxy, np.float32).mean(-1)
    if min(y.shape) < 3:
        return 0.0
    response = cv2.filter2D(y, -1, _NOISE_KERNEL)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2.0) / 6.0 * np.abs(response).mean())


def is_repeat(proxy: np.ndarray, previous: np.ndarray) -> bool:
    """True when ``proxy`` repeats ``previous`` (both (h, w, 3) proxies) up to noise and coding
    error: mean absolute difference under REPEAT_NOISE of its noise level and REPEAT_MAX."""
    diff = float(np.abs(np.asarray(proxy, np.float32) - np.asarray(previous, np.float32)).mean())
    return diff == 0.0 or diff < min(REPEAT_MAX, REPEAT_NOISE * noise_level(proxy))


def exact_key(proxy: np.ndarray) -> bytes:
    """Key of a proxy's exact content, taken at the half precision the analysis stores proxies
    in: two frames with the same key are exact repeats."""
    half = np.ascontiguousarray(proxy, np.float16)
    return hashlib.blake2b(half.tobytes(), digest_size=16).digest()
