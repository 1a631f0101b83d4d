"""Stateless local refinement L: the paper's flow-warped temporal consistency, as a pure
function of a fixed window of frames around t (never of what was rendered before).

For frame t the filter outputs of its window, O_s = apply(P_s, C_s), are warped into t's grid
and averaged with O_t where the flow is valid. The low-frequency part of (mean - O_t)
(normalized Gaussian, ``sigma`` proxy pixels) is folded into C_t's offsets, so the correction
still applies at full resolution without touching structure. Warped pixels whose
high-frequency difference to O_t exceeds ``outlier`` (flow errors, occlusions) are ignored.
"""
from __future__ import annotations

import cv2
import numpy as np

from deflicker.method.correction import apply_to_proxy
from deflicker.errors import InvalidSettingsError
from deflicker.settings import RefineSettings
from deflicker.method.warp import warp

_TINY = 1e-6


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (reflecting borders) of (h, w[, c]) float32, same shape."""
    out = cv2.GaussianBlur(np.ascontiguousarray(image, dtype=np.float32), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return out.reshape(image.shape)


def lowpass(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Normalized convolution: blur(weight * values) / blur(weight), (h, w, c) with (h, w) weights."""
    num = _blur(values * weight[..., None], sigma)
    return num / (_blur(weight, sigma)[..., None] + _TINY)


def temporal_residual(o_t: np.ndarray, o_s: np.ndarray, flow: np.ndarray, valid: np.ndarray,
                      settings: RefineSettings) -> tuple[np.ndarray, np.ndarray]:
    """(warp(O_s) - O_t, weight) for one neighbour: (h, w, 3) and (h, w) float32 in {0, 1}."""
    diff = warp(o_s, flow) - o_t
    weight = np.asarray(valid, dtype=np.float32)
    high = diff - lowpass(diff, weight, settings.sigma)
    weight = weight * (np.abs(high).max(axis=-1) <= settings.outlier)
    return diff, weight.astype(np.float32)


def refine_coefficients(t: int, coeffs: dict[int, np.ndarray], proxies: dict[int, np.ndarray],
                        flows: dict[int, tuple[np.ndarray, np.ndarray]], settings: RefineSettings) -> np.ndarray:
    """Refined (h, w, 12) coefficients of frame t from its window.

    ``coeffs[s]`` (h, w, 12) and ``proxies[s]`` (h, w, 3) for t and each neighbour;
    ``flows[s] = (f_ts (h, w, 2), valid (h, w) bool)`` from t to neighbour s. Neighbours
    further than ``settings.window`` from t are ignored; with none valid C_t is returned
    unchanged. Pure: the result depends only on the arguments.
    """
    neighbours = sorted(s for s in flows if s != t and abs(s - t) <= settings.window)
    missing = [s for s in [t, *neighbours] if s not in coeffs or s not in proxies]
    if missing:
        raise InvalidSettingsError(f"refinement of frame {t} lacks coefficients or proxies of frames {missing}")
    c_t = np.array(coeffs[t], dtype=np.float32, copy=True)
    if not neighbours:
        return c_t
    o_t = apply_to_proxy(proxies[t], c_t)
    acc = np.zeros_like(o_t)
    count = np.ones(o_t.shape[:2], dtype=np.float32)  # frame t itself, at zero residual
    for s in neighbours:
        flow, valid = flows[s]
        diff, weight = temporal_residual(o_t, apply_to_proxy(proxies[s], coeffs[s]), flow, valid, settings)
        acc += diff * weight[..., None]
        count += weight
    if count.max() <= 1.0:
        return c_t
    # Mean residual is acc / count; its count-weighted low-pass is blur(acc) / blur(count).
    c_t[..., 9:12] += _blur(acc, settings.sigma) / _blur(count, settings.sigma)[..., None]
    return c_t


#: Gaussian sigma of :func:`atlas_low_frequency`, as a fraction of the proxy's long side.
ATLAS_LOW_SIGMA = 1.0 / 85.0


def atlas_low_frequency(coeffs: np.ndarray, proxy: np.ndarray, guide: np.ndarray, represented: np.ndarray,
                        level: float) -> np.ndarray:
    """Coefficients whose output takes the atlas's low frequencies where the atlas shows the frame.

    Local flicker (a gain field, per-frame local processing) survives the filter's smooth
    affine correction in part; the atlas's appearance does not flicker. The low-frequency
    difference blur(A_t - O_t) (sigma ATLAS_LOW_SIGMA of the long side), weighted by where
    A_t represents the frame and by the shot's local-flicker ``level`` in [0, 1], is folded
    into the offsets: structure stays the input's, and at full resolution it is a smooth
    offset field. (h, w, 12) -> (h, w, 12) float32.
    """
    out = apply_to_proxy(np.ascontiguousarray(proxy, dtype=np.float32), coeffs)
    sigma = max(1.0, ATLAS_LOW_SIGMA * max(proxy.shape[:2]))
    weight = np.float32(level) * np.asarray(represented, np.float32)[..., None]
    moved = np.array(coeffs, dtype=np.float32, copy=True)
    moved[..., 9:12] += weight * _blur(np.asarray(guide, np.float32) - out, sigma)
    return moved
