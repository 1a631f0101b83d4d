"""deflicker.method.flow against the exact flow of the synthetic clips."""
from __future__ import annotations

import numpy as np
import pytest

from deflicker.method.flow import estimate_flow, flow_pair
from deflicker.settings import FlowSettings
from deflicker.synth.clips import make_clip


@pytest.fixture(scope="module")
def clip():
    return make_clip("timelapse_astronaut", size=(96, 128), frames=8, seed=1)


def _epe(clip, t: int, settings: FlowSettings, frames) -> float:
    """Mean endpoint error of f_{t->t-1} against the exact flow, inside the exact mask."""
    flow = estimate_flow(frames[t], frames[t - 1], settings)
    valid = clip.valid_prev[t]
    return float(np.linalg.norm(flow - clip.flow_prev[t], axis=-1)[valid].mean())


def test_flow_is_accurate_on_clean_and_flickering_frames(clip):
    for frames in (clip.clean, clip.flickering):
        epe = np.mean([_epe(clip, t, FlowSettings(), frames) for t in range(1, len(frames))])
        assert epe < 0.5, epe


def test_brightness_normalization_helps_under_local_flicker():
    # Under global flicker both are accurate (DIS normalizes each patch's mean); a gain field
    # that changes across the frame and over time is what the local normalization is for.
    local = make_clip("local_rocket", size=(96, 128), frames=8, seed=1)
    plain = np.mean([_epe(local, t, FlowSettings(normalize_brightness=False), local.flickering) for t in range(1, 8)])
    normalized = np.mean([_epe(local, t, FlowSettings(), local.flickering) for t in range(1, 8)])
    assert normalized < 0.5 * plain, (normalized, plain)


def test_consistency_mask_flags_the_occluded_object_edges(clip):
    flow, valid = flow_pair(clip.flickering[4], clip.flickering[3])
    exact = clip.valid_prev[4]
    assert valid.mean() > 0.6
    # pixels the check keeps are mostly truly visible in the other frame
    assert exact[valid].mean() > exact.mean()
