"""Make samples/flicker_sample.mkv, the clip the README's main command (`make run`) deflickers.

A slow pan across a scikit-image photo (coffee), 48 frames of 256x144 at 24 fps, 8-bit FFV1
(lossless, under 3 MB), with synthetic flicker of several kinds that change over the clip:

* frames 0-47: global exposure flicker (random per frame) plus 8 Hz mains-like pulsing;
* frames 0-47: small per-channel colour-balance flicker;
* frames 16-47: gamma (tone) flicker;
* frames 30-47: local flicker, a smooth random gain field that changes every frame.

Deterministic (fixed seed): ``python samples/make_sample.py`` rewrites the same pixels.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from deflicker.train.degrade import smooth_field
from deflicker.io.files import write_clip

FRAMES, WIDTH, HEIGHT, FPS = 48, 256, 144, 24.0
OUT = Path(__file__).resolve().parent / "flicker_sample.mkv"


def clean_frames(n: int = FRAMES, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """(n, height, width, 3) float32 in [0, 1]: a window panning right and slightly down across the photo."""
    from skimage import data

    photo = data.coffee().astype(np.float32) / 255.0  # 400 x 600
    scale = 0.6
    frames = []
    for t in range(n):
        x0, y0 = 20.0 + 1.6 * t, 30.0 + 0.35 * t
        m = np.float32([[1 / scale, 0, x0], [0, 1 / scale, y0]])  # output pixel -> photo pixel
        frames.append(cv2.warpAffine(photo, m, (width, height), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_REFLECT))
    return np.stack(frames)


def add_flicker(clean: np.ndarray, seed: int = 7) -> np.ndarray:
    """The clip with the flicker kinds listed in the module docstring, clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    out = []
    for t, frame in enumerate(clean):
        exposure = rng.uniform(0.75, 1.25) * (1.0 + 0.08 * np.sin(2 * np.pi * 8.0 * t / FPS))
        colour = 1.0 + rng.normal(0.0, 0.05, 3)
        y = frame * np.float32(exposure) * colour.astype(np.float32)
        if t >= 16:
            y = np.maximum(y, 0.0) ** np.float32(np.exp(rng.uniform(-0.25, 0.25)))
        if t >= 30:
            field = smooth_field(rng, frame.shape[:2], 1, 3)
            y = y * np.exp(np.float32(0.18) * field)
        out.append(np.clip(y, 0.0, 1.0).astype(np.float32))
    return np.stack(out)


def main(argv: list[str] | None = None) -> int:
    """Write the sample clip (default: next to this script)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args(argv)
    frames = add_flicker(clean_frames())
    path = write_clip(args.output, frames, fps=FPS, bit_depth=8, codec="ffv1")
    print(f"wrote {path} ({len(frames)} frames, {WIDTH}x{HEIGHT}, {path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
