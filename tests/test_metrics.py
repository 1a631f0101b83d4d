"""Ewarp, PSNR and SSIM on cases with known answers, and on the synthetic clips."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from deflicker.errors import InvalidSettingsError
from deflicker.bench.metrics import estimate_truth, ewarp, ewarp_terms, floor, floor_prev, pair_error, psnr, score, ssim
from deflicker.synth.clips import clip_names, make_clip, make_set


def _texture(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.1, 0.9, (h, w, 3)).astype(np.float32)


def _static_truth(n: int, h: int, w: int):
    """Zero flow, every pixel valid (frame 0 of the previous-frame pair: invalid)."""
    flow = np.zeros((n, h, w, 2), np.float32)
    valid = np.ones((n, h, w), bool)
    valid_prev = valid.copy()
    valid_prev[0] = False
    return flow, valid_prev, flow.copy(), valid


def test_identical_frames_score_zero():
    frames = np.stack([_texture()] * 6)
    assert ewarp(frames, *_static_truth(6, 24, 32)) == 0.0
    assert ewarp(frames[:1], *_static_truth(1, 24, 32)) == 0.0  # no pair at all


def test_alternating_gain_gives_the_hand_computed_value():
    x, g, n = _texture(), 0.7, 5
    frames = np.stack([x if t % 2 == 0 else g * x for t in range(n)])
    d = (1 - g) * float(x.mean())  # mean |X - gX|
    # previous-frame pairs all differ by the gain: d each. First-frame pairs: t = 1, 3 differ (d), t = 2, 4 match.
    expected = d + (d + 0 + d + 0) / 4
    assert ewarp(frames, *_static_truth(n, 24, 32)) == pytest.approx(expected, rel=1e-5)
    prev, first = ewarp_terms(frames, *_static_truth(n, 24, 32))
    assert prev == pytest.approx([d] * 4, rel=1e-5) and first == pytest.approx([d, 0, d, 0], rel=1e-5, abs=1e-7)


def test_flow_convention_and_mask():
    # frame t shows the texture shifted right by 2t pixels: pixel x of t is pixel x - 2 of t-1
    base = _texture(24, 48)
    n = 4
    frames = np.stack([np.roll(base, 2 * t, axis=1) for t in range(n)])
    flow_prev = np.zeros((n, 24, 48, 2), np.float32)
    flow_prev[1:, ..., 0] = -2.0
    flow_first = np.zeros_like(flow_prev)
    flow_first[..., 0] = -2.0 * np.arange(n)[:, None, None]
    cols = np.arange(48)[None, None, :]
    valid_prev = np.broadcast_to(cols >= 2, (n, 24, 48)).copy()  # the wrapped columns are not the same point
    valid_prev[0] = False
    valid_first = np.broadcast_to(cols >= 2 * np.arange(n)[:, None, None], (n, 24, 48)).copy()
    assert ewarp(frames, flow_prev, valid_prev, flow_first, valid_first) == pytest.approx(0.0, abs=1e-6)
    wrong = -flow_prev  # the opposite sign does not match
    assert pair_error(frames[1], frames[0], wrong[1], valid_prev[1]) > 0.1
    # what the mask excludes does not count; the mean is over valid pixels only
    spoiled = frames[1].copy()
    spoiled[5:15, 10:30] = 1.0
    region = np.zeros((24, 48), bool)
    region[5:15, 10:30] = True
    assert pair_error(spoiled, frames[0], flow_prev[1], valid_prev[1] & ~region) == pytest.approx(0.0, abs=1e-6)
    expected = float(np.abs(1.0 - frames[1][region]).mean())
    assert pair_error(spoiled, frames[0], flow_prev[1], region) == pytest.approx(expected, rel=1e-5)


def test_pair_without_valid_pixels_is_left_out():
    x = _texture()
    frames = np.stack([x, 0.5 * x, 0.5 * x])
    flow, valid_prev, flow_first, valid_first = _static_truth(3, 24, 32)
    valid_first[1:] = False
    assert math.isnan(pair_error(x, x, flow[0], valid_first[1]))
    d = 0.5 * float(x.mean())
    assert ewarp(frames, flow, valid_prev, flow_first, valid_first) == pytest.approx(d / 2, rel=1e-5)
    with pytest.raises(InvalidSettingsError):
        ewarp(frames[:2], flow, valid_prev, flow_first, valid_first)


def test_psnr_and_ssim():
    a = np.zeros((2, 16, 16, 3), np.float32)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 0.1) == pytest.approx(20.0)
    assert psnr(a, a + 0.1, peak=2.0) == pytest.approx(20.0 + 20 * math.log10(2))
    x = np.stack([_texture(32, 32, s) for s in range(3)])
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x[0], x[0]) == pytest.approx(1.0)
    noisy = np.clip(x + np.random.default_rng(1).normal(0, 0.1, x.shape), 0, 1).astype(np.float32)
    noisier = np.clip(x + np.random.default_rng(1).normal(0, 0.3, x.shape), 0, 1).astype(np.float32)
    assert 1.0 > ssim(x, noisy) > ssim(x, noisier) > 0.0
    assert psnr(x, noisy) > psnr(x, noisier)
    with pytest.raises(InvalidSettingsError):
        ssim(x, x[:2])
    with pytest.raises(InvalidSettingsError):
        psnr(x, x[:2])


def test_score_and_floor():
    clip = make_clip("global_w3_chelsea", size=(48, 64), frames=8)
    best = score(clip.clean, clip)
    assert set(best) == {"ewarp", "ewarp_prev", "psnr", "ssim", "detail"}  # "static" only on clips with a static region
    assert best["ewarp"] == floor(clip) and best["psnr"] == math.inf and best["ssim"] == pytest.approx(1.0)
    assert best["ewarp_prev"] == floor_prev(clip) < best["ewarp"]  # the previous-frame term alone
    raw = score(clip.flickering, clip)
    assert raw["ewarp"] > 3 * best["ewarp"] and raw["psnr"] < 40 and raw["ssim"] < 1.0
    rgba = np.concatenate([clip.flickering, np.ones_like(clip.flickering[..., :1])], axis=-1)
    assert score(rgba, clip) == raw  # alpha is ignored
    processed = make_clip("processed_greyworld_rocket", size=(48, 64), frames=4)
    own = score(processed.flickering, processed)  # the processed look is the target
    assert own["psnr"] == math.inf and own["ssim"] == pytest.approx(1.0)
    assert score(processed.clean, processed)["psnr"] < 40
    with pytest.raises(InvalidSettingsError):
        score(clip.clean[:4], clip)


def test_clean_beats_the_input_on_every_standard_clip():
    for clip in make_set(long_frames=60):
        if clip.family == "fade":  # the clean clip fades: its first-frame warping error is the fade's
            continue
        raw = ewarp(clip.flickering, clip.flow_prev, clip.valid_prev, clip.flow_first, clip.valid_first)
        assert raw > 1.5 * floor(clip), clip.name
        # old film's grain is fresh in every frame: its floor holds two grain differences per term
        assert floor(clip) < (0.06 if clip.family == "oldfilm" else 0.02), clip.name
    assert len(clip_names()) == 23


def test_estimated_truth_close_to_exact():
    clip = make_clip("global_w3_coffee", size=(96, 128), frames=8)
    flow_prev, valid_prev, flow_first, valid_first = estimate_truth(clip.flickering)
    assert flow_prev.shape == clip.flow_prev.shape and valid_first.shape == clip.valid_first.shape
    assert not valid_prev[0].any() and valid_first[0].all() and not flow_first[0].any()
    both = valid_prev & clip.valid_prev
    assert both[1:].mean() > 0.6
    assert np.median(np.linalg.norm(flow_prev - clip.flow_prev, axis=-1)[both]) < 0.3
    both = valid_first & clip.valid_first
    assert np.median(np.linalg.norm(flow_first - clip.flow_first, axis=-1)[both]) < 0.5
    truth = (flow_prev, valid_prev, flow_first, valid_first)
    assert ewarp(clip.clean, *truth) < 0.3 * ewarp(clip.flickering, *truth)


def test_detail_kept_and_static_error():
    from deflicker.bench.metrics import detail_kept, static_error

    clip = make_clip("gate_letterbox_chelsea", size=(48, 64), frames=4)
    x = clip.flickering
    assert detail_kept(x, x) == pytest.approx(1.0)
    assert detail_kept(x * np.float32(0.7) + np.float32(0.1), x) == pytest.approx(1.0, abs=1e-4)  # a gain keeps detail
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in x])
    assert detail_kept(blurred, x) < 0.9  # a blur loses it
    swapped = x.copy()
    swapped[2] = x[1]  # another frame's detail in frame 2
    assert detail_kept(swapped, x) < 0.9
    assert static_error(x, x, clip.static) == 0.0
    ghost = x.copy()
    ghost[1][clip.static] = 0.2
    assert static_error(ghost, x, clip.static) == pytest.approx(0.2)
    assert static_error(ghost, x, np.zeros_like(clip.static)) == 0.0
    assert score(x, clip)["static"] == 0.0 and score(ghost, clip)["static"] == pytest.approx(0.2)
