"""Tiny flickering clips for engine, server and CLI tests (built from a scikit-image photo)."""
from __future__ import annotations

import numpy as np


def flicker_clip(n: int = 12, h: int = 48, w: int = 64, seed: int = 0, alpha: bool = False,
                 hdr: float = 1.0, zoom: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(clean, flickering) float32 clips (n, h, w, 3|4) of a slowly panning photo with global flicker.

    ``zoom`` is the photo's source pixels per frame pixel (small = smooth content, 1 = full detail).
    """
    import cv2
    from skimage import data

    rng = np.random.default_rng(seed)
    photo = data.astronaut().astype(np.float32) / 255.0
    clean, noisy = [], []
    for t in range(n):
        m = np.float32([[zoom, 0, 40 + 6 * zoom * t], [0, zoom, 60 + 2 * zoom * t]])
        frame = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP)
        frame = frame * np.float32(hdr)
        gain = rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, size=3)
        clean.append(frame)
        noisy.append(frame * gain.astype(np.float32))
    clean_a, noisy_a = np.stack(clean), np.stack(noisy)
    if alpha:
        ramp = np.linspace(0, 1, w, dtype=np.float32)[None, None, :, None] * np.ones((n, h, 1, 1), np.float32)
        clean_a = np.concatenate([clean_a, ramp], axis=-1)
        noisy_a = np.concatenate([noisy_a, ramp], axis=-1)
    return clean_a, noisy_a


def film_repeats(frames: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """A film transfer of ``frames``: every frame shown twice, (2n, ...); and each output
    frame's first occurrence."""
    first = [2 * (t // 2) for t in range(2 * len(frames))]
    return np.repeat(frames, 2, axis=0), first


def host_frames(codes: np.ndarray) -> np.ndarray:
    """8-bit frames (n, h, w, 3) uint8 as a host hands them to the plugin: float32 RGBA, alpha 1,
    through 16 bits like the test host (``v * 257 / 65535``)."""
    wide = codes.astype(np.float32) * np.float32(257)
    colour = wide / np.float32(65535)
    return np.concatenate([colour, np.ones((*codes.shape[:-1], 1), np.float32)], axis=-1)
