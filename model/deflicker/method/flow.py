"""Optical flow between proxy frames (OpenCV DIS) and occlusion masks.

Flicker changes brightness, globally and locally, so flow is estimated on brightness-normalized
frames unless the settings say otherwise: each pixel's luma minus its local mean, divided by
its local contrast (Gaussian windows of a fixed fraction of the frame's long side, LOCAL_SCALE). That is
invariant to smooth gain fields (local flicker, mains bands) as well as global ones; on the
synthetic local-flicker clip it cuts the endpoint error twentyfold (7.4 -> 0.35 px) against a
per-frame standardization (``deflicker bench flow`` measures it).
Conventions for flows and warping are in :mod:`deflicker.method.warp`.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from deflicker.method.image import luminance
from deflicker.settings import FlowSettings
from deflicker.method.warp import consistency_mask

_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


#: DIS's finest pyramid level: 0 = the proxy itself. The presets stop one level above (half
#: the proxy), which on the synthetic clips left a 0.05 px per frame bias that the atlas
#: accumulated over a shot (end-point error 0.17 -> 0.14 px, ~2x the time of a 6 ms flow).
FINEST_SCALE = 0

#: Window (Gaussian sigma) of the local brightness normalization, as a fraction of the long side.
#: Per-frame local processing (CLAHE) changes contrast over tiles of a few percent of the frame:
#: 1/21 left it bending the flows (the atlas off by pixels, 51% of CLAHE flicker removed), 1/42
#: follows it (66%; local gain fields 70% -> 80%); 1/64 starts to lose flat regions to noise.
LOCAL_SCALE = 1.0 / 42.0
#: ... but never under this many pixels: on small proxies a narrower window normalizes noise
#: up to structure (a 64-pixel test clip kept 21% of its global flicker at 1.5 px, under 15% at 3).
LOCAL_MIN_SIGMA = 3.0


def flow_input(image: np.ndarray, normalize: bool = True) -> np.ndarray:
    """8-bit grey image DIS works on; with ``normalize`` its luma is locally normalized first."""
    y = luminance(image) if image.ndim == 3 else image.astype(np.float32)
    if normalize:
        sigma = max(LOCAL_MIN_SIGMA, LOCAL_SCALE * max(y.shape))
        detail = y - cv2.GaussianBlur(y, (0, 0), sigma)
        contrast = np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), sigma) + 1e-4)
        y = detail / contrast * 40.0 + 128.0
    else:
        y = y * 255.0
    return np.clip(y, 0, 255).astype(np.uint8)


def _dis(settings: FlowSettings) -> Any:
    dis = cv2.DISOpticalFlow_create(_PRESETS[settings.preset])  # type: ignore[attr-defined]
    dis.setFinestScale(FINEST_SCALE)
    return dis


def estimate_flow(frame_t: np.ndarray, frame_s: np.ndarray, settings: FlowSettings = FlowSettings()) -> np.ndarray:
    """Flow f_{t->s}, (H, W, 2) float32, between two (H, W, 3) proxy frames."""
    a = flow_input(frame_t, settings.normalize_brightness)
    b = flow_input(frame_s, settings.normalize_brightness)
    return _dis(settings).calc(a, b, None).astype(np.float32)  # type: ignore[no-any-return]


def flows_both(frame_t: np.ndarray, frame_s: np.ndarray, settings: FlowSettings = FlowSettings()
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(f_{t->s}, valid mask of t, f_{s->t}, valid mask of s): both directions, each checked
    against the other (two flow estimates, not four)."""
    a = flow_input(frame_t, settings.normalize_brightness)
    b = flow_input(frame_s, settings.normalize_brightness)
    dis = _dis(settings)
    fw = dis.calc(a, b, None).astype(np.float32)
    bw = dis.calc(b, a, None).astype(np.float32)
    return fw, consistency_mask(fw, bw), bw, consistency_mask(bw, fw)


def flow_pair(frame_t: np.ndarray, frame_s: np.ndarray, settings: FlowSettings = FlowSettings()) -> tuple[np.ndarray, np.ndarray]:
    """(f_{t->s}, valid mask of t) with the forward-backward check."""
    fw, valid, _, _ = flows_both(frame_t, frame_s, settings)
    return fw, valid
