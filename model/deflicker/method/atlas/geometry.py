"""Plane geometry the atlas and its object layer share: the flow sample grid and robust
similarity fits of point correspondences (a camera's or an object's motion between frames).

Affines are (2, 3) arrays mapping (x, y) pixel positions; point sets are (k, 2) float64.
"""
from __future__ import annotations

import numpy as np

#: Flow points sampled per frame pair, about (on a regular grid of at least every 4th pixel).
PAIR_POINTS = 600


def sample_stride(h: int, w: int) -> int:
    """Grid step of the flow samples for (h, w) proxies: about PAIR_POINTS per pair, at least 4."""
    return max(4, int(round(float(np.sqrt(h * w / PAIR_POINTS)))))


def sample_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of the flow sample grid, each (gh, gw) int."""
    step = sample_stride(h, w)
    ys, xs = np.mgrid[step // 2:h:step, step // 2:w:step]
    return ys, xs


#: Huber scale of the flow residuals (atlas pixels) for the first reweighted pass.
HUBER = 1.0
#: Tukey biweight cut-off (atlas pixels) of the later passes: farther correspondences (a moving
#: object) get no weight at all; Huber alone leaves them ~1/r each, which biased the camera
#: motion by ~0.2 px a frame towards the object and made the atlas drift by pixels over a shot.
TUKEY = 3.0


#: The identity as a (2, 3) affine.
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def fit_similarity(src: np.ndarray, dst: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted least-squares similarity (2, 3) with dst ~ s R src + t; (k, 2) points each."""
    wsum = float(weight.sum())
    if wsum < 1e-6 or len(src) < 3:
        return IDENTITY.copy()
    zs, zd = src[:, 0] + 1j * src[:, 1], dst[:, 0] + 1j * dst[:, 1]
    ms, md = (weight * zs).sum() / wsum, (weight * zd).sum() / wsum
    cs, cd = zs - ms, zd - md
    den = float((weight * np.abs(cs) ** 2).sum())
    a = (weight * np.conj(cs) * cd).sum() / den if den > 1e-9 else 1.0 + 0j
    b = md - a * ms
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def robust_weights(residuals: np.ndarray, first: bool) -> np.ndarray:
    """IRLS weights of residuals (atlas pixels): Huber on the ``first`` pass (a convex start from
    the unweighted fit), Tukey's biweight after it (outliers such as moving objects drop out)."""
    if first:
        return np.minimum(1.0, HUBER / np.maximum(residuals, 1e-9))
    return np.clip(1.0 - (residuals / TUKEY) ** 2, 0.0, 1.0) ** 2  # type: ignore[no-any-return]


def robust_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Similarity fit with a few reweighting passes (outliers: moving objects)."""
    weight = np.ones(len(src))
    s = fit_similarity(src, dst, weight)
    for i in range(4):
        res = np.linalg.norm(src @ s[:, :2].T + s[:, 2] - dst, axis=1)
        weight = robust_weights(res, first=i == 0)
        s = fit_similarity(src, dst, weight)
    return s


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(2, 3) affine of x -> a(b(x))."""
    return np.hstack([a[:, :2] @ b[:, :2], (a[:, :2] @ b[:, 2] + a[:, 2])[:, None]])


def grid_matches(flow: np.ndarray, valid: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(points, their flow partners), (k, 2) float64 each: the valid sample-grid pixels of a flow."""
    ys, xs = sample_grid(h, w)
    grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    ok = valid[ys, xs].ravel()
    f = flow[ys, xs].reshape(-1, 2).astype(np.float64)
    return grid[ok], grid[ok] + f[ok]
