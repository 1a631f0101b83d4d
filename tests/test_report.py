"""The before/after report's per-frame figures, from float frames and from stored pixels."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from deflicker.cli.report import ReportCollector
from deflicker.io.clip import to_float
from deflicker.method.image import mean_luminance


def _exact_mean_luma(frame: np.ndarray) -> float:
    """Rec.709 luma's mean in float64 over the whole float frame (the reference)."""
    f = to_float(frame).astype(np.float64)
    return float((f[..., 0] * 0.2126 + f[..., 1] * 0.7152 + f[..., 2] * 0.0722).mean())


@pytest.mark.parametrize("dtype, channels", [(np.uint16, 3), (np.uint16, 4), (np.uint8, 3), (np.float32, 4)])
def test_stored_pixels_give_the_float_frames_figures(dtype, channels):
    rng = np.random.default_rng(3)
    h, w = 1100, 1037  # several bands, an odd width
    top = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    pixels = (rng.uniform(0, top, (h, w, channels)) * np.linspace(0.2, 1.0, h)[:, None, None]).astype(dtype)
    stored, floats = ReportCollector(1), ReportCollector(1)
    stored.add(0, pixels, pixels[::-1])
    floats.add(0, to_float(pixels), to_float(pixels[::-1]))
    assert mean_luminance(pixels) == pytest.approx(_exact_mean_luma(pixels), rel=1e-7)
    assert stored.before[0] == pytest.approx(floats.before[0], rel=1e-7)
    assert stored.after[0] == pytest.approx(floats.after[0], rel=1e-7)
    assert stored.before[0] == pytest.approx(stored.after[0], rel=1e-7)  # the same pixels, rows reversed
    for a, b in zip(stored.thumbs[0], floats.thumbs[0]):
        np.testing.assert_array_equal(a, b)


def test_a_16bit_frame_is_recorded_without_a_float_frame():
    h, w = 1080, 1920
    pixels = np.random.default_rng(0).integers(0, 65536, (h, w, 3), dtype=np.uint16)
    collector = ReportCollector(1)  # frame 0 is a thumbnail too
    tracemalloc.start()
    try:
        collector.add(0, pixels, pixels)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < h * w * 3 * 4 / 3, f"{peak / 1e6:.1f} MB allocated for a {h * w * 12 / 1e6:.0f} MB float frame"
