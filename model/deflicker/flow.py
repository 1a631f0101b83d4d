"""Optical flow between proxy frames (OpenCV DIS) and occlusion masks.

Flicker changes brightness, so flow is estimated on brightness-normalized frames (each frame's
luma standardized to zero mean, unit variance) unless the settings say otherwise.
Conventions for flows and warping are in :mod:`deflicker.warp`.
"""
from __future__ import annotations

import cv2
import numpy as np

from deflicker.image import luminance
from deflicker.settings import FlowSettings
from deflicker.warp import consistency_mask

_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def flow_input(image: np.ndarray, normalize: bool = True) -> np.ndarray:
    """8-bit grey image DIS works on; with ``normalize`` its luma is standardized first."""
    y = luminance(image) if image.ndim == 3 else image.astype(np.float32)
    if normalize:
        y = (y - float(y.mean())) / (float(y.std()) + 1e-6)
        y = y * 40.0 + 128.0
    else:
        y = y * 255.0
    return np.clip(y, 0, 255).astype(np.uint8)


def estimate_flow(frame_t: np.ndarray, frame_s: np.ndarray, settings: FlowSettings = FlowSettings()) -> np.ndarray:
    """Flow f_{t->s}, (H, W, 2) float32, between two (H, W, 3) proxy frames."""
    dis = cv2.DISOpticalFlow_create(_PRESETS[settings.preset])
    a = flow_input(frame_t, settings.normalize_brightness)
    b = flow_input(frame_s, settings.normalize_brightness)
    return dis.calc(a, b, None).astype(np.float32)


def flow_pair(frame_t: np.ndarray, frame_s: np.ndarray, settings: FlowSettings = FlowSettings()) -> tuple[np.ndarray, np.ndarray]:
    """(f_{t->s}, valid mask of t) with the forward-backward check."""
    fw = estimate_flow(frame_t, frame_s, settings)
    bw = estimate_flow(frame_s, frame_t, settings)
    return fw, consistency_mask(fw, bw)
