"""The fast atlas's colour fit: each frame's per-channel affine colour against the texture
(``P_t ~ g_t * A_t + b_t``), robust to what the texture does not show and to clipped values."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np

from deflicker.method.atlas.texture import censored
from deflicker.progress import CancelCheck, check_cancel

if TYPE_CHECKING:
    from deflicker.method.atlas.fast import FastAtlas

#: Spread (std, proxy units) below which a channel of A_t is flat for the colour fit.
FLAT_CHANNEL = 0.01
#: Reweighted passes of the per-frame colour fit, and its Tukey cut-off in robust standard
#: deviations (1.4826 MAD) of the residuals. The trimmed least squares it replaced (worst 20%
#: dropped twice) kept a bias of up to 4% in a channel's gain, which drifted per-frame white
#: balance (grey-world) through the shot; the biweight follows the true gains to ~0.5%.
COLOUR_PASSES = 6
COLOUR_TUKEY = 4.685
#: Share of a channel's samples that must be uncensored for its affine fit. With fewer (the
#: black end of a fade) nothing holds the reweighted fit, which ran off to offsets of -800;
#: such a channel keeps the gain alone that its start gives (1 where no sample is free).
MIN_FREE = 0.02


def identity_colour(n: int) -> np.ndarray:
    """Per-frame colour transforms (n, 2, 3) that change nothing: gains 1, offsets 0."""
    colour = np.zeros((n, 2, 3), np.float32)
    colour[:, 0] = 1.0
    return colour


def fit_channel_affine(a: np.ndarray, p: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares per-channel gains and offsets (3,) each with p ~ g * a + b;
    (k, 3) samples, (k, 3) weights. A channel of ``a`` with no spread (FLAT_CHANNEL) cannot
    tell a gain from an offset (noise would pick one at random and drift the texture's level):
    a gain alone there."""
    wsum = np.maximum(weight.sum(0), 1e-9)
    am, pm = (weight * a).sum(0) / wsum, (weight * p).sum(0) / wsum
    da, dp = a - am, p - pm
    var = (weight * da ** 2).sum(0)
    g = (weight * da * dp).sum(0) / np.maximum(var, 1e-9)
    g = np.where(g > 1e-3, g, 1.0)
    b = pm - g * am
    flat = np.sqrt(var / wsum) < FLAT_CHANNEL
    return np.where(flat, pm / np.maximum(am, 1e-6), g), np.where(flat, 0.0, b)


def robust_channel_affine(a: np.ndarray, p: np.ndarray, display: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_channel_affine` reweighted COLOUR_PASSES times with Tukey's biweight on each
    channel's residuals, scaled by their MAD: moving objects, ghosts and misregistered edges
    drop out instead of pulling the gain. It starts from the median ratio p / a (a gain alone),
    which a third of the pixels off cannot move, where a least-squares start would be.

    ``display``-referred values are censored at the clipping level (CLIPPED): a channel clipped
    in ``p`` says only that g * a + b reaches the clip there (crushed: stays below the floor).
    Each pass, such a sample counts at max(p, prediction) (min for crushed), so it pulls only a
    prediction that contradicts it. Leaving clipped pixels out instead keeps the darker ones
    alone, whose narrow spread of ``a`` (against A_t's own errors) flattened the gain: a frame
    with 40% of its red clipped got a red gain of 0.6 and an offset of 0.4 (truth 1.5 and 0).
    A channel with under MIN_FREE of its samples uncensored keeps its start.
    """
    high, low = censored(p) if display else (np.zeros(p.shape, bool), np.zeros(p.shape, bool))
    free = ~(high | low)
    start = free & (a > 0.02)
    g = np.array([np.median(p[start[:, c], c] / a[start[:, c], c]) if start[:, c].any() else 1.0 for c in range(3)])
    alone = g.copy()
    b = np.zeros(3)
    for _ in range(COLOUR_PASSES):
        pred = g * a + b
        target = np.where(high, np.maximum(p, pred), np.where(low, np.minimum(p, pred), p))
        res = target - pred
        scale = np.array([1.4826 * np.median(np.abs(res[free[:, c], c])) if free[:, c].any() else 0.0
                          for c in range(3)]) + 1e-4
        weight = np.clip(1.0 - (res / (COLOUR_TUKEY * scale)) ** 2, 0.0, 1.0) ** 2
        g, b = fit_channel_affine(a, target, weight)
    few = free.mean(0) < MIN_FREE
    return np.where(few, alone, g), np.where(few, 0.0, b)


def frame_colours(proxies: np.ndarray, atlas: "FastAtlas", display: bool = True,
                  cancel: Optional[CancelCheck] = None) -> np.ndarray:
    """Per-frame, per-channel affine colour (n, 2, 3): gains g_t and offsets b_t with
    P_t ~ g_t * A_t + b_t against the atlas's texture as it is (:func:`robust_channel_affine`;
    clipped and crushed values of ``display``-referred proxies censored)."""
    colour = identity_colour(len(proxies)).astype(np.float64)
    for t in range(len(proxies)):
        check_cancel(cancel)
        a = atlas.frame(t)[::2, ::2].reshape(-1, 3).astype(np.float64)  # every 4th pixel: 6 unknowns
        p = proxies[t][::2, ::2].reshape(-1, 3).astype(np.float64)
        colour[t] = robust_channel_affine(a, p, display)
    return colour.astype(np.float32)


def normalized_colours(colour: np.ndarray) -> np.ndarray:
    """Per-frame colours (n, 2, 3) rescaled so that the gains' geometric mean is 1 and the
    offsets' mean 0 over the shot: a texture splatted with them takes the shot's average look.
    They no longer map the texture they were fitted to, so they only steer the next splat; an
    atlas stores :func:`frame_colours` of its final texture."""
    g, b = colour[:, 0].astype(np.float64), colour[:, 1].astype(np.float64)
    g = g / np.exp(np.log(g).mean(0))
    c = b.mean(0) / g.mean(0)
    return np.stack([g, b - g * c], axis=1).astype(np.float32)
