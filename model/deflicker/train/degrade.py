"""Training degradations of the neural filter (the paper's tau_a and tau_s).

``appearance(x, rng)`` (tau_a) changes colour, not structure: it mimics flicker on the input.
``structure(x, rng)`` (tau_s) changes structure, with only a mild appearance jitter: it mimics
the flaws of the atlas frame used as the guide, and returns a confidence map that is lower
where the guide was damaged (noisy, sometimes uninformative, like the atlas's own).
Images are (H, W, 3) float32 in [0, 1]; outputs are float32 and may leave [0, 1].
"""
from __future__ import annotations

import cv2
import numpy as np

from deflicker.method.image import luminance


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], channels: int, cells: int) -> np.ndarray:
    """Smooth random field of unit-ish amplitude, (H, W, channels) float32 (cubic from a cells^2 grid)."""
    grid = rng.normal(size=(cells, cells, channels)).astype(np.float32)
    out = cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return out.reshape(shape[0], shape[1], channels)


def appearance(x: np.ndarray, rng: np.random.Generator, amount: float = 1.0) -> np.ndarray:
    """tau_a: brightness, contrast, colour gains, saturation, gamma, smooth local gains, offsets."""
    if rng.random() < 0.05:
        return x.copy()
    a = amount
    shape = x.shape[:2]
    y = np.maximum(x, 0.0) ** np.float32(np.exp(rng.uniform(-0.45, 0.45) * a))
    grey = luminance(y)[..., None]
    y = grey + np.float32(rng.uniform(1 - 0.7 * a, 1 + 0.6 * a)) * (y - grey)  # saturation
    mean = np.float32(y.mean())
    y = mean + np.float32(np.exp(rng.uniform(-0.4, 0.4) * a)) * (y - mean)  # contrast
    gains = np.exp(rng.uniform(-0.7, 0.6) * a + rng.normal(0, 0.15 * a, 3)).astype(np.float32)
    y = y * gains
    if rng.random() < 0.6:
        field = smooth_field(rng, shape, 1 if rng.random() < 0.5 else 3, int(rng.integers(2, 6)))
        y = y * np.exp(np.float32(rng.uniform(0.05, 0.35) * a) * field)
    y = y + rng.normal(0, 0.04 * a, 3).astype(np.float32)
    return y.astype(np.float32)


def _remap(x: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(x, gx + dx, gy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _patches(y: np.ndarray, damage: np.ndarray, rng: np.random.Generator) -> None:
    """Missing (flat or blurred) and shifted rectangles, in place; marks them in ``damage``."""
    h, w = y.shape[:2]
    for _ in range(int(rng.integers(0, 5))):
        ph, pw = int(rng.integers(h // 10, h // 3)), int(rng.integers(w // 10, w // 3))
        y0, x0 = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
        kind = rng.random()
        if kind < 0.4:  # shifted: content from elsewhere
            sy, sx = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
            y[y0:y0 + ph, x0:x0 + pw] = y[sy:sy + ph, sx:sx + pw].copy()
        elif kind < 0.7:  # missing: flat colour
            y[y0:y0 + ph, x0:x0 + pw] = rng.random(3).astype(np.float32)
        else:  # missing: heavily blurred
            y[y0:y0 + ph, x0:x0 + pw] = cv2.GaussianBlur(y, (0, 0), 8.0)[y0:y0 + ph, x0:x0 + pw]
        damage[y0:y0 + ph, x0:x0 + pw] = 1.0


def structure(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """tau_s: (guide (H, W, 3), confidence (H, W) in [0, 1]) from a clean image."""
    h, w = x.shape[:2]
    damage = np.zeros((h, w), np.float32)
    amp = float(rng.uniform(0.0, 6.0))  # elastic warp, pixels
    disp = smooth_field(rng, (h, w), 2, int(rng.integers(3, 8))) * np.float32(amp)
    if rng.random() < 0.4:  # piecewise: one half moves rigidly
        cut = smooth_field(rng, (h, w), 1, 2)[..., 0] > 0
        disp[cut] += rng.uniform(-6, 6, 2).astype(np.float32)
    y = _remap(x, disp[..., 0], disp[..., 1])
    damage = np.maximum(damage, np.clip(np.linalg.norm(disp, axis=-1) / 8.0, 0, 1))
    if rng.random() < 0.4:  # ghosting
        sx, sy = (int(v) for v in rng.integers(-15, 16, 2))
        alpha = np.float32(rng.uniform(0.2, 0.5))
        y = (1 - alpha) * y + alpha * np.roll(y, (sy, sx), axis=(0, 1))
        damage = np.maximum(damage, alpha)
    if rng.random() < 0.5:
        y = cv2.GaussianBlur(y, (0, 0), float(rng.uniform(0.5, 2.5)))
    _patches(y, damage, rng)
    y = appearance(y, rng, amount=0.12)  # the atlas's appearance is not perfect either
    if rng.random() < 0.4:
        conf = np.ones((h, w), np.float32)
    else:
        noisy = damage * np.float32(rng.uniform(0.3, 1.0)) + rng.normal(0, 0.1, (h, w)).astype(np.float32)
        conf = np.clip(1.0 - cv2.GaussianBlur(noisy, (0, 0), 3.0), 0.0, 1.0)
    return y.astype(np.float32), conf.astype(np.float32)
