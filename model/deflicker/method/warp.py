"""Flow conventions and warping, shared by the analysis, the refinement and the metrics.

A flow ``f_{t->s}`` is an (H, W, 2) float32 array of (dx, dy) in pixels such that pixel ``x``
of frame t shows the same point as ``x + f_{t->s}(x)`` of frame s. ``warp(O_s, f_{t->s})``
brings frame s into frame t's pixel grid (backward warping). A pixel is valid in the pair
(t, s) when the forward-backward check passes and ``x + f`` lands inside frame s.
"""
from __future__ import annotations

import cv2
import numpy as np


def sample_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute sampling coordinates (map_x, map_y) for a flow, float32 (H, W) each."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return gx + flow[..., 0].astype(np.float32), gy + flow[..., 1].astype(np.float32)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward-warp ``image`` (frame s) into frame t's grid with ``flow`` = f_{t->s}.

    Bilinear; samples outside frame s take the nearest border value (mask them with
    :func:`inside_mask`). Returns float32 of the image's shape.
    """
    mx, my = sample_grid(flow)
    out = cv2.remap(np.ascontiguousarray(image, dtype=np.float32), mx, my, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out


def inside_mask(flow: np.ndarray) -> np.ndarray:
    """True where ``x + flow(x)`` lies inside the frame, (H, W) bool."""
    h, w = flow.shape[:2]
    mx, my = sample_grid(flow)
    return (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)


def consistency_mask(flow_ts: np.ndarray, flow_st: np.ndarray, *, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Forward-backward check: True where f_{t->s} and f_{s->t} agree, (H, W) bool.

    Follows Lai et al.: occluded where |f + warp(b, f)|^2 > alpha (|f|^2 + |warp(b, f)|^2) + beta,
    and outside where the flow leaves the frame.
    """
    back = warp(flow_st, flow_ts)
    diff = np.sum((flow_ts + back) ** 2, axis=-1)
    bound = alpha * (np.sum(flow_ts ** 2, axis=-1) + np.sum(back ** 2, axis=-1)) + beta
    return (diff <= bound) & inside_mask(flow_ts)

