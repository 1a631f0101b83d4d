"""Keep slow changes: fades, exposure ramps and time-lapse light are content, not flicker.

The atlas fits every frame's colour as ``P_t ~ g_t * A + b_t`` (per channel); the render maps a
frame to the atlas's appearance ``A``, which flattens everything, the flicker and the slow
changes alike. The slow part of ``(g_t, b_t)`` over the shot is the content's own trend: a robust
local-linear smoother (Epanechnikov window of ``span`` frames each side, Tukey-reweighted so
flash frames drop out) keeps ramps exactly and removes what changes faster. The render then carries
the atlas's appearance along that trend (:func:`trend_coefficients`). Render-only: the analysis
and its cache do not depend on it.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

#: Settings.keep_slow value that picks the span from the clip's frame rate.
AUTO = -1
#: The automatic span, in seconds of the clip (changes over about a second or more are content).
AUTO_SECONDS = 1.0
#: Reweighted passes of the smoother and its Tukey cut-off in robust standard deviations.
ROBUST_PASSES = 3
TUKEY = 4.685
#: A frame whose mean is this close to black (white) in every channel holds no colour to fit
#: (its pixels are all crushed or clipped): the trend takes its level instead.
FLAT_LEVEL = 0.03
#: :func:`significance` from which a trend starts being kept, and from which it is kept whole.
#: Measured (span 24): pure flicker 0.1-1.3 (W = 1, 3, 10, local, mains), fades 4.5-9.7.
SIGNIFICANT_LOW = 1.5
SIGNIFICANT_HIGH = 2.5


def span_frames(keep_slow: int, fps: float) -> int:
    """The smoother's span in frames: ``keep_slow`` itself, or for AUTO about a second at ``fps``."""
    if keep_slow != AUTO:
        return int(keep_slow)
    return max(2, int(round(AUTO_SECONDS * (fps if fps > 0 else 24.0))))


def _local_linear(values: np.ndarray, weights: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted local-linear fit of every column of ``values`` (n, k) at each frame: Epanechnikov
    kernel over ``span`` frames each side (on the fade set it keeps the ramp closer than a
    tricube: r 0.987-0.998 against 0.977-0.998) times the per-sample robustness ``weights`` (n, k).
    Returns (fit (n, k), noise gain (n, k): the sum of the squared weights each fit gives the
    samples, i.e. the variance it passes of unit white noise)."""
    n = len(values)
    out = np.empty_like(values)
    gain = np.empty_like(values)
    for t in range(n):
        lo, hi = max(0, t - span), min(n, t + span + 1)
        x = (np.arange(lo, hi, dtype=np.float64) - t)[:, None]
        w = (1.0 - (x / (span + 1.0)) ** 2) * weights[lo:hi]
        s0, s1, s2 = w.sum(0), (w * x).sum(0), (w * x * x).sum(0)
        det = s0 * s2 - s1 * s1
        flat = det <= 1e-9 * np.maximum(s0 * s2, 1e-30)
        # each sample's weight in the fitted level: w (s2 - s1 x) / det (w / s0 where the window is flat)
        hat = np.where(flat, w / np.maximum(s0, 1e-30), w * (s2 - s1 * x) / np.where(flat, 1.0, det))
        out[t] = (hat * values[lo:hi]).sum(0)
        gain[t] = (hat * hat).sum(0)
    return out, gain


def _robust_trend(values: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray]:
    """(trend, noise gain) of :func:`_local_linear`, Tukey-reweighted ROBUST_PASSES times."""
    weights = np.ones_like(values)
    trend, gain = _local_linear(values, weights, span)
    for _ in range(ROBUST_PASSES):
        res = values - trend
        scale = 1.4826 * np.median(np.abs(res), axis=0) + 1e-6
        weights = np.clip(1.0 - (res / (TUKEY * scale)) ** 2, 0.0, 1.0) ** 2 + 1e-6
        trend, gain = _local_linear(values, weights, span)
    return trend, gain


def significance(values: np.ndarray, trend: np.ndarray, gain: np.ndarray) -> float:
    """How far the trend's variation exceeds what the flicker alone would leave in it: the
    ratio (rms) of the trend's variance to the variance the smoother passes of the residual
    (the flicker), that residual's correlation length (frames a flicker level holds, from
    its variance against the frame-to-frame differences) counted. About 1 for pure flicker."""
    res = values - trend
    var_res = (1.4826 * np.median(np.abs(res - np.median(res, axis=0)), axis=0)) ** 2 + 1e-12
    steps = np.mean(np.diff(values, axis=0) ** 2, axis=0) + 1e-12
    length = np.clip(2.0 * var_res / steps, 1.0, len(values))
    expected = float((var_res * length * gain.mean(0)).sum())
    observed = float(np.var(trend, axis=0).sum())
    return float(np.sqrt(observed / max(expected, 1e-12)))


def kept_share(values: np.ndarray, trend: np.ndarray, gain: np.ndarray, span: int) -> float:
    """The share in [0, 1] of a shot's trend that is content: by its :func:`significance` (none
    at SIGNIFICANT_LOW, all at SIGNIFICANT_HIGH), and only in shots long enough to show a change
    slower than ``span`` (none up to ``span`` frames, all from two spans on): in a shorter shot
    a few flicker levels look like a slow change as much as a ramp does."""
    z = significance(values, trend, gain)
    by_test = np.clip((z - SIGNIFICANT_LOW) / (SIGNIFICANT_HIGH - SIGNIFICANT_LOW), 0.0, 1.0)
    by_length = np.clip((len(values) - span) / (span + 1.0), 0.0, 1.0)
    return float(by_test * by_length)


def smooth_trend(values: np.ndarray, span: int, level: np.ndarray) -> np.ndarray:
    """The kept slow trend of the columns of ``values`` (n, k): robust local-linear smoothing
    over ``span`` >= 1 frames each side (a linear ramp comes back exactly; outlier frames are
    reweighted away), kept by its :func:`kept_share` around ``level`` (k,), the flattened value.
    Fewer than 3 frames: ``level`` throughout."""
    values = np.asarray(values, np.float64)
    flat = np.broadcast_to(np.asarray(level, np.float64), values.shape)
    if len(values) < 3:
        return flat.copy()
    trend, gain = _robust_trend(values, span)
    return flat + kept_share(values, trend, gain, span) * (trend - flat)


def slow_colour(colour: np.ndarray, span: int, means: Optional[np.ndarray] = None) -> np.ndarray:
    """The kept slow trend (n, 2, 3) of a shot's per-frame colour fit ``colour`` (n, 2, 3:
    gains, offsets) around the flattened colour (gains 1, offsets 0: the atlas's appearance).

    With the frames' mean colours ``means`` (n, 3, display-referred proxy units), a frame that
    is black (white) throughout, whose colour fit is free (every pixel censored), counts as what
    it is: gain 0 and its own level as the offset, so a fade to black ends in black."""
    values = np.asarray(colour, np.float64).copy()
    if means is not None:
        means = np.asarray(means, np.float64)
        flat = (means.max(-1) < FLAT_LEVEL) | (means.min(-1) > 1.0 - FLAT_LEVEL)
        values[flat, 0] = 0.0
        values[flat, 1] = means[flat]
    n = len(values)
    level = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    trend = smooth_trend(values.reshape(n, 6), span, level).reshape(n, 2, 3)
    trend[:, 0] = np.maximum(trend[:, 0], 0.0)  # a ramp into black ends at black, never below
    return trend


def trend_coefficients(coeffs: np.ndarray, trend: np.ndarray) -> np.ndarray:
    """Coefficients (..., 12) of :mod:`deflicker.method.correction` followed by the trend's colour
    ``out_c = g_c * in_c + b_c`` (``trend`` (2, 3)), as one (..., 12) float32 transform."""
    g, b = np.asarray(trend[0], np.float32), np.asarray(trend[1], np.float32)
    out = np.array(coeffs, dtype=np.float32, copy=True)
    out[..., :9] *= np.repeat(g, 3)
    out[..., 9:12] = out[..., 9:12] * g + b
    return out


def apply_trend(image: np.ndarray, trend: np.ndarray) -> np.ndarray:
    """An (h, w, 3) image in the atlas's appearance carried along the trend's colour (2, 3)."""
    out: np.ndarray = np.asarray(image, np.float32) * trend[0].astype(np.float32) + trend[1].astype(np.float32)
    return out.astype(np.float32)
