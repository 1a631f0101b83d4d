"""apply_affine / apply_to_proxy: identity, strength, no clipping, resolution independence."""
from __future__ import annotations


import cv2
import numpy as np
import pytest

from deflicker.method.correction import apply_affine, apply_to_proxy, blend_strength, identity_coefficients
from deflicker.errors import InvalidSettingsError


def smooth_coeffs(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Random smooth coefficients near identity, (h, w, 12)."""
    rng = np.random.default_rng(seed)
    grid = rng.normal(0, 0.2, (3, 4, 12)).astype(np.float32)
    return identity_coefficients(h, w) + cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def reference(image: np.ndarray, coeffs: np.ndarray, scale: float) -> np.ndarray:
    """Straightforward per-pixel M x + b * scale with cv2.resize-upsampled coefficients."""
    H, W = image.shape[:2]
    up = cv2.resize(coeffs, (W, H), interpolation=cv2.INTER_LINEAR)
    m = up[..., :9].reshape(H, W, 3, 3)
    return np.einsum("hwck,hwk->hwc", m, image) + up[..., 9:] * scale


def test_identity_coefficients_leave_image_unchanged():
    img = np.random.default_rng(1).random((50, 70, 3), dtype=np.float32) * 3
    out = apply_affine(img, identity_coefficients(12, 16), scale=2.0)
    np.testing.assert_allclose(out, img, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(apply_to_proxy(img, identity_coefficients(50, 70)), img, rtol=1e-6, atol=1e-6)


def test_matches_reference_and_scales_offsets():
    img = np.random.default_rng(2).random((90, 120, 3), dtype=np.float32)
    c = smooth_coeffs(30, 40)
    np.testing.assert_allclose(apply_affine(img, c, scale=2.5), reference(img, c, 2.5), atol=2e-5)


def test_strength_zero_is_bit_exact_and_half_blends():
    img = np.random.default_rng(3).random((40, 60, 3), dtype=np.float32) + 0.5
    c = smooth_coeffs(10, 15)
    out = apply_affine(img, c, strength=0.0)
    assert out.tobytes() == img.tobytes() and out is not img
    half = apply_affine(img, c, strength=0.5)
    np.testing.assert_allclose(half, 0.5 * (img + apply_affine(img, c)), atol=2e-5)
    np.testing.assert_allclose(blend_strength(c, 0.0), identity_coefficients(10, 15))


def test_values_above_one_are_not_clipped():
    img = np.full((20, 30, 3), 4.0, dtype=np.float32)
    img[0, 0] = -0.5
    c = identity_coefficients(5, 5)
    c[..., 0] = 2.0  # red gain 2
    c[..., 9:] = 0.5  # offset
    out = apply_affine(img, c, scale=3.0)
    assert out[5, 5, 0] == pytest.approx(9.5) and out[5, 5, 1] == pytest.approx(5.5)
    assert out[0, 0, 1] == pytest.approx(1.0)
    assert out.dtype == np.float32


def test_4k_agrees_with_1080p():
    rng = np.random.default_rng(4)
    base = cv2.resize(rng.random((68, 120, 3), dtype=np.float32), (1920, 1080), interpolation=cv2.INTER_CUBIC)
    big = cv2.resize(base, (3840, 2160), interpolation=cv2.INTER_LINEAR)
    c = smooth_coeffs(144, 256)
    small_out = apply_affine(base, c, scale=1.0)
    big_out = apply_affine(big, c, scale=1.0)
    down = cv2.resize(big_out, (1920, 1080), interpolation=cv2.INTER_AREA)
    assert np.abs(down - small_out).mean() < 2e-3  # speed: `deflicker bench speed`


def test_bad_shapes_raise_clear_error():
    with pytest.raises(InvalidSettingsError):
        apply_affine(np.zeros((10, 10, 4), np.float32), identity_coefficients(4, 4))
    with pytest.raises(InvalidSettingsError):
        apply_affine(np.zeros((10, 10, 3), np.float32), np.zeros((4, 4, 9), np.float32))
    with pytest.raises(InvalidSettingsError):
        apply_to_proxy(np.zeros((10, 10, 3), np.float32), identity_coefficients(4, 4))


def test_fill_clipped_takes_the_guide_only_where_the_input_clipped():
    from deflicker.method.correction import fill_clipped

    rng = np.random.default_rng(5)
    scene = cv2.resize(rng.uniform(0.2, 0.9, (4, 6, 3)).astype(np.float32), (60, 40), interpolation=cv2.INTER_LINEAR)
    image = np.clip(scene * 1.4, 0.0, 1.0)  # an over-exposed frame: part of it clipped
    corrected = image / np.float32(1.4)  # a perfect colour correction still holds flat clipped areas
    guide = cv2.resize(scene, (30, 20), interpolation=cv2.INTER_AREA)  # proxy-size, from other frames
    work = corrected.copy()
    out = fill_clipped(work, image, guide)
    assert out is work  # filled in place, no full-size copy
    clipped = image.max(-1) >= 1.0
    assert clipped.mean() > 0.1
    assert np.abs(out - scene)[clipped].mean() < 0.5 * np.abs(corrected - scene)[clipped].mean()
    far = cv2.erode((image.max(-1) < 0.9).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    np.testing.assert_array_equal(out[far], corrected[far])  # unclipped pixels untouched
    np.testing.assert_array_equal(fill_clipped(corrected.copy(), image, guide, strength=0.0), corrected)
    unclipped = scene * 0.9
    assert fill_clipped(unclipped, unclipped, guide) is unclipped  # nothing clipped: no work, no copy


def test_fill_clipped_never_lifts_a_crushed_area_past_the_frame_bound():
    """Issue 13: a black area's output stays at or below the frame's own pixel under its fitted
    colour, so neither a local lift nor the guide's structure from other frames shows there."""
    from deflicker.method.correction import IDENTITY, colour_bound, fill_clipped

    rng = np.random.default_rng(7)
    image = rng.uniform(0.3, 0.7, (40, 60, 3)).astype(np.float32)
    image[:8] = 0.0  # a letterbox bar
    corrected = image + np.float32(0.12)  # the filter's local correction lifted everything
    people = cv2.resize(rng.uniform(0.0, 0.1, (5, 8, 3)).astype(np.float32), (30, 20))  # other frames' content
    guide = np.full((20, 30, 3), 0.5, np.float32)
    guide[:4] = people[:4]
    colour = IDENTITY.copy()
    colour[9:12] = 0.02  # the frame's fitted colour: out = in + 0.02
    out = fill_clipped(corrected, image, guide, bound=colour)
    bar = out[:7]
    np.testing.assert_allclose(bar, 0.02, atol=1e-6)  # at the bound: no lift, no structure
    np.testing.assert_array_equal(out[12:], corrected[12:])  # the picture keeps its correction
    np.testing.assert_allclose(colour_bound(image, colour)[:7], 0.02, atol=1e-7)
    np.testing.assert_allclose(colour_bound(image, colour, strength=0.5)[:7], 0.01, atol=1e-7)
    np.testing.assert_array_equal(fill_clipped(corrected, image, guide)[:7], corrected[:7])  # unknown bound: no guide
