"""Stateless local refinement: lowers warping error, pure, leaves C_t alone without neighbours."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from deflicker.method.correction import apply_to_proxy, identity_coefficients
from deflicker.errors import InvalidSettingsError
from deflicker.method.refine import refine_coefficients
from deflicker.settings import RefineSettings
from deflicker.method.warp import warp

H, W, N = 72, 96, 10


def make_clip(pan: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A panned crop of a photograph with global and smooth local flicker: (clean, flickering)."""
    rng = np.random.default_rng(seed)
    big = cv2.resize(skimage.data.astronaut().astype(np.float32) / 255, (240, 240), interpolation=cv2.INTER_AREA)
    clean = [np.ascontiguousarray(big[30:30 + H, 20 + pan * i:20 + pan * i + W]) for i in range(N)]
    flicker = []
    for frame in clean:
        field = cv2.resize(rng.normal(size=(3, 3)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
        flicker.append(frame * np.float32(np.exp(rng.normal(0, 0.15))) * np.exp(0.15 * field)[..., None])
    return clean, flicker


def exact_flow(pan: int, t: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """f_ts of a horizontal pan by ``pan`` px/frame and its validity mask."""
    dx = pan * (t - s)
    flow = np.zeros((H, W, 2), np.float32)
    flow[..., 0] = dx
    x = np.arange(W)[None, :] + dx
    return flow, np.broadcast_to((x >= 0) & (x <= W - 1), (H, W)).copy()


def window_inputs(t: int, frames: list[np.ndarray], coeffs: dict[int, np.ndarray], pan: int, k: int):
    window = range(max(0, t - k), min(N, t + k + 1))
    return (t, {s: coeffs[s] for s in window}, {s: frames[s] for s in window},
            {s: exact_flow(pan, t, s) for s in window if s != t})


def warping_error(frames: list[np.ndarray], pan: int) -> float:
    """Mean |O_t - warp(O_{t-1})| over valid pixels and frames."""
    errs = []
    for t in range(1, N):
        flow, valid = exact_flow(pan, t, t - 1)
        errs.append(np.abs(frames[t] - warp(frames[t - 1], flow))[valid].mean())
    return float(np.mean(errs))


@pytest.mark.parametrize("pan", [0, 2])
def test_refinement_lowers_warping_error(pan: int):
    _, frames = make_clip(pan)
    coeffs = {i: identity_coefficients(H, W) for i in range(N)}  # "refinement without atlas"
    settings = RefineSettings(window=3)
    out = [apply_to_proxy(frames[t], refine_coefficients(*window_inputs(t, frames, coeffs, pan, 3), settings))
           for t in range(N)]
    raw = warping_error(frames, pan)
    assert warping_error(out, pan) < 0.5 * raw


def test_refinement_is_order_independent_and_pure():
    _, frames = make_clip(2, seed=1)
    rng = np.random.default_rng(5)
    coeffs = {i: identity_coefficients(H, W) + rng.normal(0, 0.01, (1, 1, 12)).astype(np.float32) for i in range(N)}
    before = {i: c.copy() for i, c in coeffs.items()}
    settings = RefineSettings()
    alone = refine_coefficients(*window_inputs(5, frames, coeffs, 2, 2), settings)
    forward = [refine_coefficients(*window_inputs(t, frames, coeffs, 2, 2), settings) for t in range(N)]
    backward = [refine_coefficients(*window_inputs(t, frames, coeffs, 2, 2), settings) for t in reversed(range(N))]
    assert alone.tobytes() == forward[5].tobytes() == backward[N - 1 - 5].tobytes()
    assert all(before[i].tobytes() == coeffs[i].tobytes() for i in range(N))


def test_no_window_or_no_valid_neighbour_keeps_coefficients():
    _, frames = make_clip(0)
    coeffs = {i: identity_coefficients(H, W) * 1.1 for i in range(N)}
    t, c, p, flows = window_inputs(4, frames, coeffs, 0, 2)
    assert np.array_equal(refine_coefficients(t, c, p, flows, RefineSettings(window=0)), coeffs[4])
    invalid = {s: (f, np.zeros_like(v)) for s, (f, v) in flows.items()}
    assert np.array_equal(refine_coefficients(t, c, p, invalid, RefineSettings()), coeffs[4])


def test_only_offsets_change_and_missing_frames_raise():
    _, frames = make_clip(0)
    coeffs = {i: identity_coefficients(H, W) for i in range(N)}
    t, c, p, flows = window_inputs(4, frames, coeffs, 0, 2)
    out = refine_coefficients(t, c, p, flows, RefineSettings())
    assert np.array_equal(out[..., :9], coeffs[4][..., :9]) and np.abs(out[..., 9:]).max() > 1e-3
    del p[3]
    with pytest.raises(InvalidSettingsError):
        refine_coefficients(t, c, p, flows, RefineSettings())


def test_filter_then_refinement_on_a_flawed_guide():
    """The committed filter with a blurred, shifted guide, then L: each stage lowers the warping error."""
    from deflicker.method.filter import load_filter, predict_coefficients

    clean, frames = make_clip(2, seed=3)
    guides = [cv2.GaussianBlur(np.roll(c, (1, 2), axis=(0, 1)), (0, 0), 1.5) for c in clean]
    model = load_filter()
    coeffs = {i: predict_coefficients(model, frames[i], guides[i]) for i in range(N)}
    filtered = [apply_to_proxy(frames[i], coeffs[i]) for i in range(N)]
    refined = [apply_to_proxy(frames[t], refine_coefficients(*window_inputs(t, frames, coeffs, 2, 2), RefineSettings()))
               for t in range(N)]
    raw, after_filter, after_refine = (warping_error(f, 2) for f in (frames, filtered, refined))
    assert after_filter < 0.4 * raw and after_refine < 0.7 * after_filter
    psnr = [np.mean([10 * np.log10(1 / np.mean((a - b) ** 2)) for a, b in zip(f, clean)]) for f in (frames, refined)]
    assert psnr[1] > psnr[0] + 6


def test_atlas_low_frequency_takes_the_atlas_look_and_keeps_the_structure():
    from deflicker.method.refine import atlas_low_frequency

    photo = cv2.resize(skimage.data.astronaut().astype(np.float32) / 255.0, (128, 96), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float32)
    field = (1.0 + 0.3 * np.sin(xx / 20.0) * np.cos(yy / 15.0))[..., None]  # a local gain field
    proxy = photo * field
    atlas = cv2.GaussianBlur(photo, (0, 0), 1.0)  # the atlas: the scene's look, a little soft
    coeffs = identity_coefficients(96, 128)
    everywhere = np.ones((96, 128), np.float32)
    moved = apply_to_proxy(proxy, atlas_low_frequency(coeffs, proxy, atlas, everywhere, 1.0))

    def low(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 0), 6.0)

    assert np.abs(low(moved) - low(photo)).mean() < 0.25 * np.abs(low(proxy) - low(photo)).mean()
    detail = proxy - low(proxy)  # the input's fine structure is kept, not the atlas's softness
    assert np.corrcoef((moved - low(moved)).ravel(), detail.ravel())[0, 1] > 0.9
    np.testing.assert_array_equal(atlas_low_frequency(coeffs, proxy, atlas, everywhere, 0.0), coeffs)
    untouched = atlas_low_frequency(coeffs, proxy, atlas, np.zeros((96, 128), np.float32), 1.0)
    np.testing.assert_array_equal(untouched, coeffs)  # where the atlas does not show the frame
