"""Static regions (letterbox bars, a film gate, black and white areas) pass through exactly:
the mask, its full-resolution weight, and the real Engine / `deflicker run` paths."""
from __future__ import annotations

import numpy as np
import pytest

from deflicker.cli.main import main
from deflicker.engine import Engine
from deflicker.io.files import open_clip, write_clip
from deflicker.bench.metrics import detail_kept, ewarp, static_error
from deflicker.io.source import ArraySource
from deflicker.method.static_regions import STATIC_RANGE, keep_static, passthrough_bands, static_mask
from deflicker.synth.clips import make_clip

TOLERANCE = 1.0 / 255.0


def test_static_mask_finds_black_white_and_constant_pixels_only():
    rng = np.random.default_rng(0)
    proxies = rng.uniform(0.2, 0.8, (6, 10, 12, 3)).astype(np.float16)
    proxies[:, :2] = rng.uniform(0.0, 0.02, (6, 2, 12, 3))  # black bar with grain: censored in every frame
    proxies[:, 8:, :4] = 1.0  # white title
    proxies[:, 8:, 4:8] = 0.4  # a constant grey logo
    proxies[3, 8:, 8:] = 0.0  # black in one frame only: flicker or content, not static
    mask = static_mask(proxies, display=True)
    expected = np.zeros((10, 12), bool)
    expected[:2] = True
    expected[8:, :8] = True
    np.testing.assert_array_equal(mask, expected)
    hdr = static_mask(proxies, display=False)  # float clips: only the constant pixels
    assert hdr[8:, 4:8].all() and not hdr[:2].any() and hdr[8:, :4].all()
    short = static_mask(proxies[:2], display=True)  # two frames: black and white count, constancy does not
    assert short[:2].all() and short[8:, :4].all() and not short[8:, 4:8].any()
    drift = proxies.copy()
    drift[:, 8:, 4:8] += np.arange(6, dtype=np.float16)[:, None, None, None] * np.float16(STATIC_RANGE)
    assert not static_mask(drift, display=True)[8:, 4:8].any()


def test_passthrough_weight_is_exact_up_to_the_bars_own_edge():
    h, w = 96, 128
    image = np.full((h, w, 3), 0.5, np.float32)
    image[:13] = 0.0
    image[13] = 0.25  # the bar's anti-aliased edge row
    proxy = np.zeros((24, 32), bool)
    proxy[:3] = True  # the proxy rows fully inside the bar (row 3 mixes bar and picture)
    bands = list(passthrough_bands(proxy, image, display=True))
    weight = np.concatenate([band for _, band in bands])
    assert [r.start for r, _ in bands] == [0] and weight.shape == (h, w)
    assert (weight[:13] == 1.0).all()  # every bar pixel, up to its edge, passes through exactly
    assert (weight[20:] == 0.0).all()  # the picture is the correction's
    assert list(passthrough_bands(np.zeros((24, 32), bool), image, display=True)) == []
    corrected = image + np.float32(0.1)
    out = keep_static(corrected, image, proxy, display=True)
    np.testing.assert_array_equal(out[:13], image[:13])
    np.testing.assert_array_equal(out[20:], corrected[20:])
    assert keep_static(corrected, image, None, display=True) is corrected


def _render(clip, **kw) -> np.ndarray:
    session = Engine(**kw).open(ArraySource(clip.flickering, fps=clip.fps))
    return np.stack([session.render(t)[..., :3] for t in range(len(clip.flickering))])


def test_black_bars_stay_black_through_deflicker_run(tmp_path):
    clip = make_clip("gate_letterbox_astronaut", size=(96, 128), frames=10)
    src, dst = tmp_path / "in.mkv", tmp_path / "out.mkv"
    write_clip(src, clip.flickering, fps=clip.fps, bit_depth=16, codec="ffv1")
    assert main(["run", str(src), "-o", str(dst), "--analysis-size", "64", "--cache-dir", str(tmp_path / "c")]) == 0
    with open_clip(src) as a, open_clip(dst) as b:
        inp = np.stack([f[..., :3] for f in a])
        out = np.stack([f[..., :3] for f in b])
    bars = clip.static
    assert static_error(out, inp, bars) <= TOLERANCE
    # no ghost structure: the bars' spatial and temporal variance is the input's (none)
    for o, i in zip(out, inp):
        assert o[bars].std() == pytest.approx(float(i[bars].std()), abs=1e-4)
    assert out[:, bars].var(axis=0).max() <= 1e-8
    # and the picture is deflickered
    truth = (clip.flow_prev, clip.valid_prev, clip.flow_first, clip.valid_first)
    assert ewarp(out, *truth) < 0.6 * ewarp(inp, *truth)


@pytest.mark.parametrize("name", ["static_white_rocket", "static_black_coffee", "gate_pillarbox_chelsea"])
def test_black_and_white_static_regions_pass_through_the_engine(name, tmp_path):
    clip = make_clip(name, size=(48, 64), frames=8)
    out = _render(clip, cache_dir=tmp_path)
    assert static_error(out, clip.flickering, clip.static) <= TOLERANCE


def test_old_film_gate_exact_detail_kept_and_more_consistent(tmp_path):
    clip = make_clip("oldfilm_chelsea", size=(72, 96), frames=12)
    out = _render(clip, cache_dir=tmp_path)
    assert static_error(out, clip.flickering, clip.static) <= TOLERANCE
    assert detail_kept(out, clip.flickering) >= 0.95  # grain and each frame's dust specks kept
    truth = (clip.flow_prev, clip.valid_prev, clip.flow_first, clip.valid_first)
    assert ewarp(out, *truth) <= 0.8 * ewarp(clip.flickering, *truth)
