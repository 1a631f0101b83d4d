"""Quality metrics of a deflickered clip, as pure functions; values on the 0-1 scale.

Ewarp follows ``shared/method.md``: ``E_pair(O_t, O_s)`` is the mean over valid pixels (and
channels) of ``|O_t - warp(O_s, f_{t->s})|``, and ``Ewarp`` is the mean over frames t >= 1 of
``E_pair(O_t, O_{t-1}) + E_pair(O_t, O_0)``. Synthetic clips carry the exact flow and mask of
their clean video; real clips use :func:`estimate_truth` on the input, computed once and reused
for every method so that no method can bend the metric. Frames are (N, H, W, 3|4) float32
(alpha is ignored). Flow conventions are those of :mod:`deflicker.method.warp`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Union

import cv2
import numpy as np

from deflicker.errors import InvalidSettingsError
from deflicker.method.warp import warp

if TYPE_CHECKING:
    from deflicker.settings import FlowSettings
    from deflicker.synth.clips import SynthClip

Frames = Union[np.ndarray, Sequence[np.ndarray]]


def _rgb(frames: Frames) -> np.ndarray:
    """(N, H, W, 3) float32 view of frames (alpha dropped)."""
    arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[-1] not in (3, 4):
        raise InvalidSettingsError(f"frames must be (N, H, W, 3|4), got {arr.shape}")
    return arr[..., :3]


def pair_error(o_t: np.ndarray, o_s: np.ndarray, flow_ts: np.ndarray, valid: np.ndarray) -> float:
    """E_pair: mean over valid pixels and channels of |O_t - warp(O_s, f_{t->s})|.

    ``o_t``, ``o_s``: (H, W, C); ``flow_ts``: (H, W, 2); ``valid``: (H, W) bool.
    NaN when no pixel is valid (the pair has no visible correspondence).
    """
    valid = np.asarray(valid, bool)
    if not valid.any():
        return float("nan")
    o_t = np.asarray(o_t, np.float32)
    diff = np.abs(o_t - warp(np.asarray(o_s, np.float32), np.asarray(flow_ts, np.float32)).reshape(o_t.shape))
    return float(diff[valid].mean())


def ewarp_terms(frames: Frames, flow_prev: np.ndarray, valid_prev: np.ndarray, flow_first: np.ndarray,
                valid_first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (E_pair(t, t-1), E_pair(t, 0)) for t = 1..N-1, each (N-1,) float64 (NaN: no valid pixel)."""
    x = _rgb(frames)
    n = len(x)
    if not (len(flow_prev) == len(valid_prev) == len(flow_first) == len(valid_first) == n):
        raise InvalidSettingsError(f"{n} frames but truth for {len(flow_prev)}/{len(flow_first)} frames")
    if n and (tuple(flow_prev.shape[1:3]) != x.shape[1:3] or tuple(valid_first.shape[1:3]) != x.shape[1:3]):
        raise InvalidSettingsError(f"frames are {x.shape[1:3]} but the flows are {flow_prev.shape[1:3]}")
    prev = np.array([pair_error(x[t], x[t - 1], flow_prev[t], valid_prev[t]) for t in range(1, n)], np.float64)
    first = np.array([pair_error(x[t], x[0], flow_first[t], valid_first[t]) for t in range(1, n)], np.float64)
    return prev, first


#: Synthetic families whose truth itself changes from frame to frame (a fade): against frame 0
#: even the clean clip differs by the whole ramp, so their Ewarp targets compare the
#: previous-frame term alone ("ewarp_prev" of :func:`score`).
TRUTH_CHANGES = ("fade",)


def _mean_defined(values: np.ndarray) -> float:
    defined = values[np.isfinite(values)]
    return float(defined.mean()) if len(defined) else 0.0


def ewarp(frames: Frames, flow_prev: np.ndarray, valid_prev: np.ndarray, flow_first: np.ndarray,
          valid_first: np.ndarray) -> float:
    """Ewarp: mean over t >= 1 of E_pair(t, t-1) + E_pair(t, 0).

    Computed as mean(E_pair(t, t-1)) + mean(E_pair(t, 0)), which is the same when every pair has
    valid pixels; a pair without any (e.g. a pan that left frame 0 behind) is left out of its
    mean. 0.0 for a single frame.
    """
    prev, first = ewarp_terms(frames, flow_prev, valid_prev, flow_first, valid_first)
    return _mean_defined(prev) + _mean_defined(first)


def estimate_truth(frames: Frames, settings: Optional["FlowSettings"] = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(flow_prev, valid_prev, flow_first, valid_first) of a real clip, estimated on the INPUT
    frames with OpenCV DIS and the forward-backward check (:func:`deflicker.method.flow.flow_pair`).

    Estimate once per clip and score every method with the same arrays. Memory: four arrays of
    the clip's size (flows float32 x2 channels).
    """
    from deflicker.method.flow import flow_pair
    from deflicker.settings import FlowSettings

    settings = settings or FlowSettings()
    x = _rgb(frames)
    n, h, w = x.shape[:3]
    flow_prev = np.zeros((n, h, w, 2), np.float32)
    valid_prev = np.zeros((n, h, w), bool)
    flow_first = np.zeros((n, h, w, 2), np.float32)
    valid_first = np.zeros((n, h, w), bool)
    if n:
        valid_first[0] = True
    for t in range(1, n):
        flow_prev[t], valid_prev[t] = flow_pair(x[t], x[t - 1], settings)
        flow_first[t], valid_first[t] = flow_pair(x[t], x[0], settings) if t > 1 else (flow_prev[t], valid_prev[t])
    return flow_prev, valid_prev, flow_first, valid_first


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels of two equally shaped arrays (inf if equal)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise InvalidSettingsError(f"psnr of different shapes {a.shape} and {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak * peak / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over frames of (N, H, W, C) or a single (H, W, C) pair (data range 1)."""
    from skimage.metrics import structural_similarity

    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.shape != b.shape or a.ndim not in (3, 4):
        raise InvalidSettingsError(f"ssim needs equal (N,) H, W, C arrays, got {a.shape} and {b.shape}")
    if a.ndim == 3:
        a, b = a[None], b[None]
    side = min(a.shape[1:3])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        raise InvalidSettingsError(f"ssim needs frames of at least 3x3, got {a.shape[1:3]}")
    return float(np.mean([structural_similarity(x, y, channel_axis=-1, data_range=1.0, win_size=win)
                          for x, y in zip(a, b)]))


def static_error(frames: Frames, inputs: Frames, region: np.ndarray) -> float:
    """Largest |output - input| over the pixels of a static ``region`` (H, W) bool, every frame
    and channel (0.0 for an empty region): a static region must pass through unchanged."""
    x, y = _rgb(frames), _rgb(inputs)
    if not region.any():
        return 0.0
    return float(np.abs(x[:, region] - y[:, region]).max())


#: Gaussian sigma (pixels) of the low-pass that :func:`detail_kept` removes: what is left is the
#: frame's fine detail (edges, texture, grain, dust).
DETAIL_SIGMA = 1.5


def _high_pass(image: np.ndarray) -> np.ndarray:
    from deflicker.method.image import luminance

    y = luminance(image)
    return (y - cv2.GaussianBlur(y, (0, 0), DETAIL_SIGMA)).astype(np.float64)  # type: ignore[no-any-return]


def detail_kept(frames: Frames, inputs: Frames) -> float:
    """Detail kept: the lowest, over frames, correlation of the output's fine detail (luma less
    its DETAIL_SIGMA Gaussian low-pass) with the input frame's. 1.0: every frame's detail is
    the input's up to a gain (a smooth colour correction); a blur, a detail copied from other
    frames or a lost speck lowers it. Frames without detail in the input count as 1.0."""
    x, y = _rgb(frames), _rgb(inputs)
    lowest = 1.0
    for out, inp in zip(x, y):
        a, b = _high_pass(out), _high_pass(inp)
        den = float(np.sqrt((a * a).sum() * (b * b).sum()))
        if den > 1e-12:
            lowest = min(lowest, float((a * b).sum()) / den)
    return lowest


def score(frames: Frames, clip: "SynthClip") -> dict[str, float]:
    """{"ewarp", "ewarp_prev" (its previous-frame term, :data:`TRUTH_CHANGES`), "psnr", "ssim",
    "detail"} of a method's output on a synthetic clip, and
    "static" (:func:`static_error`) for clips with a static region. PSNR and SSIM compare with
    the clean clip, or with the processed clip itself when ``clip.target_is_clean`` is False
    (faithfulness to the processed look); detail (:func:`detail_kept`) with the input. Where the
    clean clip repeats frames, also "repeat_max": the largest difference between an output frame
    and its first occurrence's."""
    x = _rgb(frames)
    reference = clip.clean if clip.target_is_clean else clip.flickering
    if x.shape != reference.shape:
        raise InvalidSettingsError(f"output is {x.shape} but clip {clip.name} is {reference.shape}")
    prev, first = ewarp_terms(x, clip.flow_prev, clip.valid_prev, clip.flow_first, clip.valid_first)
    out = {"ewarp": _mean_defined(prev) + _mean_defined(first), "ewarp_prev": _mean_defined(prev),
           "psnr": psnr(x, reference), "ssim": ssim(x, reference), "detail": detail_kept(x, clip.flickering)}
    if clip.static is not None:
        out["static"] = static_error(x, clip.flickering, clip.static)
    pairs = repeated_frames(clip.clean)
    if pairs:
        out["repeat_max"] = max(float(np.abs(x[t] - x[first]).max()) for t, first in pairs)
    return out


def repeated_frames(clean: Frames) -> list[tuple[int, int]]:
    """(t, first occurrence) of every frame of ``clean`` that repeats the one before it exactly."""
    pairs, first = [], 0
    for t in range(1, len(clean)):
        if np.array_equal(clean[t], clean[t - 1]):
            pairs.append((t, first))
        else:
            first = t
    return pairs


def floor(clip: "SynthClip") -> float:
    """The clean clip's own Ewarp: what a perfect deflicker would score (interpolation error)."""
    return ewarp(clip.clean, clip.flow_prev, clip.valid_prev, clip.flow_first, clip.valid_first)


def floor_prev(clip: "SynthClip") -> float:
    """The clean clip's own previous-frame term of Ewarp (the mean of E_pair(t, t-1), "ewarp_prev")."""
    return _mean_defined(ewarp_terms(clip.clean, clip.flow_prev, clip.valid_prev, clip.flow_first, clip.valid_first)[0])
