"""Flicker applied to clean synthetic clips, one function per kind.

Each function takes the clean clip, (N, H, W, 3) float32 in [0, 1], and a seeded
``np.random.Generator`` and returns the flickering clip of the same shape, clipped to [0, 1]
as a camera or a file would. The processed kinds run a content-dependent image operation on
every frame on its own (their flicker comes from the content changing, not from a gain).
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from deflicker.train.degrade import smooth_field

Flicker = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _clip(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def global_flicker(clean: np.ndarray, rng: np.random.Generator, window: int) -> np.ndarray:
    """The paper's protocol: a brightness gain, per-channel colour gains and a small offset,
    drawn at random once per window of ``window`` frames and shared by its frames."""
    n = len(clean)
    windows = (n + window - 1) // window
    brightness = rng.uniform(0.65, 1.35, size=windows)
    colour = rng.uniform(0.88, 1.12, size=(windows, 3))
    offset = rng.uniform(-0.03, 0.03, size=(windows, 3))
    k = np.arange(n) // window
    gain = (brightness[k, None] * colour[k]).astype(np.float32)[:, None, None, :]
    return _clip(clean * gain + offset[k].astype(np.float32)[:, None, None, :])


def local_flicker(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth spatially varying gain field (luma and colour parts) that changes every frame,
    partly correlated with the previous frame's field, over a mild global flicker."""
    n, h, w = clean.shape[:3]
    out = np.empty_like(clean)
    field: np.ndarray = np.zeros((h, w, 3), np.float32)
    for t in range(n):
        fresh = 0.28 * smooth_field(rng, (h, w), 1, 3) + 0.08 * smooth_field(rng, (h, w), 3, 4)
        field = (0.5 * field + 0.87 * fresh).astype(np.float32)
        gain = np.exp(field + np.float32(rng.uniform(-0.12, 0.12)))
        out[t] = clean[t] * gain
    return _clip(out)


def mains_flicker(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """High-speed capture under mains lighting with a rolling shutter: horizontal bands that
    move from frame to frame (deeper in blue than red, as discharge lamps are) and a global beat."""
    n, h = clean.shape[:2]
    bands = rng.uniform(1.2, 2.5)  # light cycles over the frame height
    drift = rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.3)  # cycles per frame
    phase0 = rng.uniform(0, 2 * np.pi)
    depth = rng.uniform(0.3, 0.45) * np.array([0.8, 0.9, 1.0], np.float32)
    beat_period, beat_phase = rng.uniform(6.0, 11.0), rng.uniform(0, 2 * np.pi)
    beat_depth = rng.uniform(0.1, 0.18)
    y = np.arange(h, dtype=np.float32) / h
    out = np.empty_like(clean)
    for t in range(n):
        wave = 0.5 + 0.5 * np.cos(2 * np.pi * (bands * y + drift * t) + phase0)  # (H,)
        band_gain = 1.0 - depth[None, :] * wave[:, None]  # (H, 3)
        beat = 1.0 + beat_depth * np.sin(2 * np.pi * t / beat_period + beat_phase)
        out[t] = clean[t] * (band_gain[:, None, :] * np.float32(beat / (1.0 - depth.mean() / 2)))
    return _clip(out)


def timelapse_flicker(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Time-lapse: exposure (EV) and gamma that jump at random frames and hold in between,
    with a small per-frame jitter (aperture and shutter imprecision)."""
    n = len(clean)
    jumps = rng.random(n) < 0.35
    jumps[0] = True
    if n > 2 and not jumps[1:].any():
        jumps[n // 2] = True
    out = np.empty_like(clean)
    ev = gamma = 0.0
    for t in range(n):
        if jumps[t]:  # a real jump: at least 0.25 EV away from the previous exposure
            ev = float(np.clip(ev + rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.7), -0.8, 0.7))
            gamma = rng.uniform(-0.25, 0.25)
        e = ev + rng.normal(0.0, 0.03)
        out[t] = np.maximum(clean[t] * np.float32(2.0 ** e), 0.0) ** np.float32(np.exp(gamma))
    return _clip(out)


def autolevels(frame: np.ndarray) -> np.ndarray:
    """Per-channel auto levels: the 0.5th..99.5th percentile of each channel stretched to [0, 1]."""
    lo = np.percentile(frame, 0.5, axis=(0, 1))
    hi = np.percentile(frame, 99.5, axis=(0, 1))
    return _clip((frame - lo) / np.maximum(hi - lo, 1e-3))


def greyworld(frame: np.ndarray) -> np.ndarray:
    """Grey-world white balance: each channel scaled so its mean equals the mean grey."""
    means = frame.reshape(-1, 3).mean(axis=0)
    return _clip(frame * (means.mean() / np.maximum(means, 1e-3)))


def clahe(frame: np.ndarray) -> np.ndarray:
    """CLAHE (``cv2.createCLAHE``) on the lightness of CIE Lab, 16-bit, colour kept."""
    lab = cv2.cvtColor(np.ascontiguousarray(frame, np.float32), cv2.COLOR_RGB2LAB)
    tiles = (max(1, frame.shape[1] // 32), max(1, frame.shape[0] // 32))
    op = cv2.createCLAHE(clipLimit=3.0, tileGridSize=tiles)
    lightness = np.clip(lab[..., 0] / 100.0 * 65535.0, 0, 65535).astype(np.uint16)
    lab[..., 0] = op.apply(lightness).astype(np.float32) / 65535.0 * 100.0
    return _clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))


def _to8(frame: np.ndarray) -> np.ndarray:
    return np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8)


def stylize(frame: np.ndarray) -> np.ndarray:
    """OpenCV's painterly stylization (``cv2.stylization``) on the 8-bit frame, run with the long
    side upscaled to at least 512 px (at small sizes its edge lines would cover everything)."""
    h, w = frame.shape[:2]
    up = max(1.0, 512.0 / max(h, w))
    image = _to8(frame)
    if up > 1.0:
        image = cv2.resize(image, (int(round(w * up)), int(round(h * up))), interpolation=cv2.INTER_CUBIC)
    out = cv2.stylization(image, sigma_s=30, sigma_r=0.3)
    if up > 1.0:
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)
    return out.astype(np.float32) / 255.0


def detail(frame: np.ndarray) -> np.ndarray:
    """OpenCV's detail enhancement (``cv2.detailEnhance``) on the 8-bit frame."""
    return cv2.detailEnhance(_to8(frame), sigma_s=10, sigma_r=0.15).astype(np.float32) / 255.0


def per_frame(op: Callable[[np.ndarray], np.ndarray]) -> Flicker:
    """A flicker function running ``op`` on every frame on its own (the rng is unused)."""

    def apply(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.stack([op(frame) for frame in clean]).astype(np.float32)

    apply.__doc__ = f"Per-frame {op.__name__}."
    return apply


def _global(window: int) -> Flicker:
    def apply(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return global_flicker(clean, rng, window)

    return apply


#: processed kind -> the image operation it runs on every frame
PROCESSING: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "processed_autolevels": autolevels,
    "processed_greyworld": greyworld,
    "processed_clahe": clahe,
    "processed_stylize": stylize,
    "processed_detail": detail,
}

#: flicker kind (the clip name without its photo) -> function
KINDS: dict[str, Flicker] = {
    "global_w1": _global(1),
    "global_w3": _global(3),
    "global_w10": _global(10),
    "local": local_flicker,
    "mains": mains_flicker,
    "timelapse": timelapse_flicker,
    **{kind: per_frame(op) for kind, op in PROCESSING.items()},
    "long_global": _global(3),
}
