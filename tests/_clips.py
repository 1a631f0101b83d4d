"""Tiny flickering clips for engine, server and CLI tests (built from a scikit-image photo), and
the frames a host hands the plugin (host_frames, plugin_finds_analysis)."""
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


def host_frames(pixels: np.ndarray) -> np.ndarray:
    """Frames (n, h, w, 3) as a host hands them to the plugin: float32 RGBA, alpha 1. Integer
    pixels (uint8, uint16) go through 16 bits like the test host (8-bit ``v * 257``, then
    ``/ 65535``); float pixels are kept."""
    if pixels.dtype == np.uint8:
        pixels = pixels.astype(np.uint16) * np.uint16(257)
    colour = pixels.astype(np.float32) / np.float32(65535) if pixels.dtype == np.uint16 else pixels.astype(np.float32)
    return np.concatenate([colour, np.ones((*pixels.shape[:-1], 1), np.float32)], axis=-1)


def plugin_finds_analysis(path: str, frame_range: tuple[int, int], settings) -> bool:
    """Would the plugin, handed the media file's frames [start, end) as a host hands them (float
    RGBA), render them from the analysis in the cache (default root) instead of analysing again?
    The plugin's own steps: its clip key, the entry loaded and checked, every frame's digest
    checked (nothing is analysed or written here)."""
    from deflicker.engine import Engine
    from deflicker.io.clip import quantize
    from deflicker.io.source import ArraySource
    from deflicker.method.content import ContentMismatch
    from deflicker.method.segment_analysis import load_analysis

    engine = Engine(settings)
    with engine.open(path, frame_range=frame_range) as media:
        info = media.source.info
        frames = [media.source[t] for t in range(len(media))]
    pixels = np.stack([quantize(f, info.bit_depth) if info.bit_depth <= 16 else f for f in frames])
    handed = host_frames(pixels[..., :3])
    source = ArraySource(handed, fps=info.fps, bit_depth=32)
    session = engine.open(source)
    analysis = load_analysis(engine.cache, session.key.digest(), source, settings, quiet=True)
    if analysis is None or analysis.content is None:
        return False
    try:
        for t, frame in enumerate(handed):
            analysis.content.check(t, frame)
    except ContentMismatch:
        return False
    return True
