"""Synthetic clips with static regions and old film: the bench families of issue 13.

A film kind is a flicker kind of :mod:`deflicker.synth.flicker` under the moving picture plus
what does not move with it, composited the same way on the clean and the flickering frames:

* ``gate_letterbox`` / ``gate_pillarbox``: black bars (anti-aliased edges) over a moving picture;
* ``static_black`` / ``static_white``: a black night-sky area, a white title card, constant in
  every frame while the rest moves and flickers;
* ``oldfilm``: gate weave (the picture jitters a little every frame, exact flow kept), film
  grain, dust specks (different in every frame), vignetting and a black gate with rounded
  corners that stays still while the picture weaves.

Grain, dust and vignetting are the film's content (in the clean frames too), not flicker. The
truth follows the composite: static pixels are valid with zero flow, picture pixels that map
onto a static region, a bar's edge or a dust speck are occluded. ``SynthClip.static`` holds the
pixels fully inside a static region, where the output must equal the input.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

import cv2
import numpy as np

from deflicker.synth.motion import Scene

if TYPE_CHECKING:
    from deflicker.synth.clips import SynthClip

#: Coverage tolerance of "fully static" / "fully picture" (as synth_motion's _PURE).
_PURE = 1e-3
#: Gate weave, standard deviation of the per-frame picture shift as a fraction of the width.
WEAVE = 0.006
#: Film grain, standard deviation (luma, 0-1 units) after its slight blur.
GRAIN = 0.02
#: Dust specks per frame, per 10,000 pixels.
DUST_DENSITY = 1.5
#: Brightness at the frame's corners relative to its centre.
VIGNETTE = 0.7

Overlay = Callable[[tuple[int, int]], tuple[np.ndarray, float]]


def _edge(distance: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of a region from a signed distance to its edge (pixels, > 0 inside)."""
    return np.clip(distance + 0.5, 0.0, 1.0).astype(np.float32)  # type: ignore[no-any-return]


def _coords(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = size
    return np.mgrid[0:h, 0:w].astype(np.float32)[::-1]  # type: ignore[return-value]


def letterbox(size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Black bars over the top and bottom 13% (fractional edge rows): (coverage, value)."""
    h = size[0]
    _, y = _coords(size)
    bar = 0.13 * h
    return np.maximum(_edge(bar - y - 0.5), _edge(y + 0.5 - (h - bar))), 0.0


def pillarbox(size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Black bars over the left and right 14%: (coverage, value)."""
    w = size[1]
    x, _ = _coords(size)
    bar = 0.14 * w
    return np.maximum(_edge(bar - x - 0.5), _edge(x + 0.5 - (w - bar))), 0.0


def night_sky(size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """A black area over the top third with a wavy lower edge (a night sky): (coverage, value)."""
    h, w = size
    x, y = _coords(size)
    horizon = h * (0.3 + 0.06 * np.sin(2 * np.pi * 1.5 * x / w + 0.4))
    return _edge(horizon - y), 0.0


def title_card(size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """A white card over the lower middle (a title): (coverage, value)."""
    h, w = size
    x, y = _coords(size)
    inside = np.minimum(np.minimum(x - 0.2 * w, 0.8 * w - x), np.minimum(y - 0.66 * h, 0.86 * h - y))
    return _edge(inside), 1.0


def film_gate(size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """A black film gate: everything outside a rounded rectangle inset 7% / 5% (soft edge)."""
    h, w = size
    x, y = _coords(size)
    half = np.array([0.43 * w, 0.45 * h], np.float32)
    radius = 0.08 * min(h, w)
    qx = np.abs(x - (w - 1) / 2.0) - (half[0] - radius)
    qy = np.abs(y - (h - 1) / 2.0) - (half[1] - radius)
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0)) + np.minimum(np.maximum(qx, qy), 0.0) - radius
    return cv2.GaussianBlur(_edge(outside), (0, 0), 0.8), 0.0


@dataclass(frozen=True)
class FilmKind:
    """A film kind: the flicker under the picture, its static overlay, and whether it is old film."""

    flicker: str  # a kind of synth_flicker.KINDS
    overlay: Overlay
    aged: bool = False  # gate weave, grain, dust and vignetting


KINDS: dict[str, FilmKind] = {
    "gate_letterbox": FilmKind("global_w3", letterbox),
    "gate_pillarbox": FilmKind("global_w1", pillarbox),
    "static_black": FilmKind("global_w1", night_sky),
    "static_white": FilmKind("global_w3", title_card),
    "oldfilm": FilmKind("global_w1", film_gate, aged=True),
}


def _shift(d: np.ndarray) -> np.ndarray:
    m = np.eye(3)
    m[:2, 2] = d
    return m


def weave(scene: Scene, kind: FilmKind, rng: np.random.Generator) -> Scene:
    """The scene with gate weave (old film): frame t shows the picture shifted by a random
    offset (WEAVE of the width, standard deviation), camera and object alike; other kinds unchanged."""
    if not kind.aged:
        return scene
    offsets = rng.normal(0.0, WEAVE * scene.size[1], size=(len(scene), 2)) * np.array([0.6, 1.0])
    shifts = np.stack([_shift(-d) for d in offsets])
    return replace(scene, camera=scene.camera @ shifts, motion=scene.motion @ shifts)


def vignette(size: tuple[int, int]) -> np.ndarray:
    """(H, W, 1) float32 gain: 1 at the centre, VIGNETTE at the corners (cos^4-like falloff)."""
    h, w = size
    x, y = _coords(size)
    r2 = ((x - (w - 1) / 2.0) / (w / 2.0)) ** 2 + ((y - (h - 1) / 2.0) / (h / 2.0)) ** 2
    return (1.0 - (1.0 - VIGNETTE) * r2 / 2.0).astype(np.float32)[..., None]  # type: ignore[no-any-return]


def grain(rng: np.random.Generator, frames: int, size: tuple[int, int]) -> np.ndarray:
    """(N, H, W, 1) float32 film grain: fresh slightly blurred noise every frame, std GRAIN."""
    out = np.empty((frames, *size, 1), np.float32)
    for t in range(frames):
        noise = cv2.GaussianBlur(rng.normal(size=size).astype(np.float32), (0, 0), 0.6)
        out[t, ..., 0] = noise * np.float32(GRAIN / max(float(noise.std()), 1e-6))
    return out


def dust(rng: np.random.Generator, frames: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Dust specks, new in every frame: (coverage (N, H, W) float32, value (N, H, W, 1) float32);
    most specks are dark dirt, some bright scratches of the negative."""
    h, w = size
    x, y = _coords(size)
    count = max(1, int(round(DUST_DENSITY * h * w / 10_000)))
    coverage = np.zeros((frames, h, w), np.float32)
    value = np.zeros((frames, h, w, 1), np.float32)
    for t in range(frames):
        for _ in range(count):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            rx, ry = rng.uniform(0.6, 2.2, size=2)
            speck = _edge(min(rx, ry) * (1.0 - np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)))
            shade = rng.uniform(0.0, 0.12) if rng.random() < 0.75 else rng.uniform(0.85, 1.0)
            value[t, ..., 0] = np.where(speck > coverage[t], shade, value[t, ..., 0])
            coverage[t] = np.maximum(coverage[t], speck)
    return coverage, value


def _composite(frames: np.ndarray, coverage: np.ndarray, value: "np.ndarray | float") -> np.ndarray:
    cov = coverage[..., None]
    return (frames * (1.0 - cov) + value * cov).astype(np.float32)  # type: ignore[no-any-return]


def _occluded(valid: np.ndarray, flow: np.ndarray, covered_t: np.ndarray, covered_s: np.ndarray) -> np.ndarray:
    """``valid`` of a pair (t, s) less the pixels covered in t or mapping onto a covered pixel of s."""
    h, w = covered_t.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    there = cv2.remap(covered_s.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)
    clear = cv2.erode((covered_t <= _PURE).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return valid & clear & (there <= _PURE)  # type: ignore[no-any-return]


def finish(clip: "SynthClip", kind: FilmKind, rng: np.random.Generator) -> "SynthClip":
    """The clip with the kind's film look (grain, dust, vignetting) and static overlay composited
    on its clean and flickering frames alike, the truth updated (module doc)."""
    n, h, w = clip.clean.shape[:3]
    clean, flickering = clip.clean, clip.flickering
    specks = np.zeros((n, h, w), np.float32)
    if kind.aged:
        gain, noise = vignette((h, w)), grain(rng, n, (h, w))
        specks, shade = dust(rng, n, (h, w))
        clean, flickering = (np.clip(_composite(x * gain + noise, specks, shade), 0.0, 1.0) for x in (clean, flickering))
    static, value = kind.overlay((h, w))
    static = np.where(static >= 1.0 - _PURE, np.float32(1.0), static)  # fully static: exactly the value
    clean, flickering = (_composite(x, static, value) for x in (clean, flickering))
    pure = cv2.erode((static >= 1.0 - _PURE).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    flow_prev, flow_first = clip.flow_prev.copy(), clip.flow_first.copy()
    valid_prev, valid_first = clip.valid_prev.copy(), clip.valid_first.copy()
    for t in range(n):
        for flow, valid, s in ((flow_prev, valid_prev, t - 1), (flow_first, valid_first, 0)):
            if s >= 0:
                covered_t, covered_s = np.maximum(static, specks[t]), np.maximum(static, specks[s])
                valid[t] = _occluded(valid[t], flow[t], covered_t, covered_s) | pure
                flow[t][pure] = 0.0
    return replace(clip, clean=clean, flickering=flickering, static=pure, flow_prev=flow_prev, valid_prev=valid_prev,
                   flow_first=flow_first, valid_first=valid_first)
