"""The per-clip analysis: atlas consistency, shots, repeated frames, HDR scale, arrays."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from deflicker.method.analysis import ClipAnalysis, analyze_clip
from deflicker.errors import Cancelled, ModelLoadError
from deflicker.bench.metrics import ewarp, floor
from deflicker.settings import Settings
from deflicker.io.source import ArraySource
from deflicker.synth.clips import make_clip

SMALL = Settings(analysis_size=64)


@pytest.fixture(scope="module")
def clip():
    return make_clip("global_w3_chelsea", size=(48, 64), frames=12, seed=2)


@pytest.fixture(scope="module")
def analysis(clip):
    return analyze_clip(ArraySource(clip.flickering), SMALL)


def _atlas_clip(analysis: ClipAnalysis, n: int) -> np.ndarray:
    return np.stack([analysis.atlas_frame(t) for t in range(n)])


def test_atlas_frames_are_consistent(clip, analysis):
    atlas = _atlas_clip(analysis, len(clip.flickering))
    args = (clip.flow_prev, clip.valid_prev, clip.flow_first, clip.valid_first)
    # nearly as consistent as the clean clip itself (measured 1.45x; the flicker is 15x)
    assert ewarp(atlas, *args) < 2.0 * floor(clip)
    # one shot, and the atlas looks like the scene (not a flat colour)
    assert list(analysis.shots) == [0, len(clip.flickering)]
    corr = np.corrcoef(atlas[5].ravel(), clip.clean[5].ravel())[0, 1]
    assert corr > 0.8


def test_mapping_does_not_drift_from_the_first_frame(clip, analysis):
    """Every frame's pixels land where frame 0's partners (exact flow) land: the registration
    to the texture removes the drift that chained flows accumulate over a shot."""

    atlas = analysis.atlases[0]
    h, w = atlas.frame_shape
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    first_x, first_y = atlas.mapping(0)
    errors = []
    for t in range(1, len(clip.flickering)):
        mx, my = atlas.mapping(t)
        f, valid = clip.flow_first[t], clip.valid_first[t]
        px = cv2.remap(first_x, gx + f[..., 0], gy + f[..., 1], cv2.INTER_LINEAR)
        py = cv2.remap(first_y, gx + f[..., 0], gy + f[..., 1], cv2.INTER_LINEAR)
        errors.append(np.median(np.hypot(mx - px, my - py)[valid]))
    assert max(errors) < 0.5, errors


def test_texture_takes_the_tightest_clipping_bound_where_no_frame_saw_the_scene():
    """A highlight clipped (and a shadow crushed) in every frame: its texels take the bound of
    the frame with the lowest gain, so every frame rebuilt from the texture clips there too;
    the mean of the frames' bounds would not (it is below what the brightest-bounding frame says)."""
    from deflicker.method.atlas.fast import splat_texture

    h, w = 24, 32
    truth = np.full((h, w, 3), 0.4, np.float32)
    truth[4:12, 4:12] = 0.85  # clipped at every gain below
    truth[14:20, 18:28] = 0.02  # crushed by every offset below
    gains = np.array([1.3, 1.5, 1.7])
    offset = -0.05
    proxies = np.clip(truth[None] * gains[:, None, None, None] + offset, 0.0, 1.0).astype(np.float32)
    colour = np.zeros((3, 2, 3), np.float32)
    colour[:, 0] = gains[:, None]
    colour[:, 1] = offset
    nodes = np.stack(np.meshgrid(np.linspace(0, w - 1, 3), np.linspace(0, h - 1, 3)), -1)[None].repeat(3, 0)
    texture, weight = splat_texture(proxies, nodes, (h, w), colour)
    np.testing.assert_allclose(texture[5:11, 5:11], (1.0 - offset) / gains.min(), atol=1e-3)
    np.testing.assert_allclose(texture[15:19, 19:27], -offset / gains.max(), atol=1e-3)
    np.testing.assert_allclose(texture[:, 14:16], 0.4, atol=1e-3)  # seen: the mean, exact
    rebuilt = texture[None] * gains[:, None, None, None] + offset
    assert (rebuilt[:, 5:11, 5:11] >= 1.0 - 1e-3).all() and (rebuilt[:, 15:19, 19:27] <= 1e-3).all()
    assert weight[5:11, 5:11].max() < 1e-3 < weight[:, 14:16].min()


def test_colour_fit_ignores_clipped_pixels():
    from deflicker.method.atlas.colour import frame_colours
    from deflicker.method.atlas.fast import FastAtlas

    rng = np.random.default_rng(3)
    texture = rng.uniform(0.05, 0.95, (24, 32, 3)).astype(np.float32)
    nodes = np.stack(np.meshgrid(np.linspace(0, 31, 3), np.linspace(0, 23, 3)), -1)[None].repeat(2, 0)
    atlas = FastAtlas(texture, np.ones((24, 32), np.float32), nodes, (24, 32))
    gains = np.array([[0.6, 0.6, 0.6], [2.2, 2.2, 2.2]], np.float32)  # frame 1: over half clipped
    proxies = np.clip(texture[None] * gains[:, None, None, :], 0.0, 1.0)
    assert (proxies[1] >= 1.0).mean() > 0.5  # more than a robust fit alone could reject
    fitted = frame_colours(proxies, atlas)
    ratio = fitted[1, 0] / fitted[0, 0]
    np.testing.assert_allclose(ratio, 2.2 / 0.6, rtol=0.01)
    blind = frame_colours(proxies, atlas, display=False)  # as if the values could exceed 1
    assert np.abs(blind[1, 0] / blind[0, 0] - 2.2 / 0.6).max() > 0.05


def test_colour_fit_censors_clipped_channels_instead_of_leaving_them_out():
    """A flawed A_t (its own errors) and half of one channel clipped: leaving the clipped pixels
    out keeps a narrow spread of the rest, and the gain flattens; censoring them keeps it."""
    from deflicker.method.atlas.colour import frame_colours, robust_channel_affine
    from deflicker.method.atlas.fast import FastAtlas
    from deflicker.method.atlas.texture import unclipped

    rng = np.random.default_rng(2)
    h, w = 48, 64
    truth = cv2.GaussianBlur(rng.uniform(0.05, 0.95, (h, w, 3)).astype(np.float32), (0, 0), 1.0)
    truth = (truth - truth.min()) / (truth.max() - truth.min()) * 0.85 + 0.08
    flawed = (truth + rng.normal(0, 0.04, truth.shape)).astype(np.float32)
    nodes = np.stack(np.meshgrid(np.linspace(0, w - 1, 3), np.linspace(0, h - 1, 3)), -1)[None].repeat(2, 0)
    atlas = FastAtlas(flawed, np.ones((h, w), np.float32), nodes, (h, w))
    gains = np.array([[0.8, 0.8, 0.8], [1.9, 1.2, 1.2]], np.float32)
    proxies = np.clip(truth[None] * gains[:, None, None, :], 0.0, 1.0)
    assert (proxies[1, ..., 0] >= 1.0).mean() > 0.45
    mean = truth.reshape(-1, 3).mean(0)
    want = gains[1] / gains[0]
    fitted = frame_colours(proxies, atlas)
    level = (fitted[1, 0] * mean + fitted[1, 1]) / (fitted[0, 0] * mean + fitted[0, 1])
    np.testing.assert_allclose(level, want, rtol=0.015)  # the brightness the deflicker evens out
    np.testing.assert_allclose(fitted[1, 0] / fitted[0, 0], want, rtol=0.06)
    a = flawed[::2, ::2].reshape(-1, 3).astype(np.float64)
    left_out = []
    for proxy in proxies:
        p = proxy[::2, ::2].reshape(-1, 3).astype(np.float64)
        keep = unclipped(p)
        left_out.append(robust_channel_affine(a[keep], p[keep], display=False))
    assert left_out[1][0][0] / left_out[0][0][0] < 0.85 * want[0]  # the flattened red gain it replaces
    old_level = (left_out[1][0] * mean + left_out[1][1]) / (left_out[0][0] * mean + left_out[0][1])
    assert old_level[0] < 0.96 * want[0]


def test_colour_fit_is_not_pulled_by_an_object_the_texture_lacks():
    from deflicker.method.atlas.colour import frame_colours
    from deflicker.method.atlas.fast import FastAtlas

    rng = np.random.default_rng(4)
    texture = rng.uniform(0.05, 0.6, (48, 64, 3)).astype(np.float32)
    nodes = np.stack(np.meshgrid(np.linspace(0, 63, 3), np.linspace(0, 47, 3)), -1)[None].repeat(2, 0)
    atlas = FastAtlas(texture, np.ones((48, 64), np.float32), nodes, (48, 64))
    gains = np.array([[0.9, 1.0, 1.1], [1.2, 0.8, 1.3]], np.float32)
    proxies = texture[None] * gains[:, None, None, :]
    proxies[1, 8:36, 10:50] = rng.uniform(0.3, 0.7, (28, 40, 3))  # an object over a third of frame 1
    fitted = frame_colours(proxies, atlas)
    np.testing.assert_allclose(fitted[1, 0] / fitted[0, 0], gains[1] / gains[0], rtol=0.01)
    np.testing.assert_allclose(fitted[:, 1], 0.0, atol=0.01)


def test_stored_colours_map_the_stored_texture():
    """Each frame's stored colour (g_t, b_t) applied to the stored texture reproduces the frame
    as well as a colour fitted afresh to that texture does. A fade's ramp lives in those
    colours; renormalizing them alone after the last fit had them map another texture."""
    from deflicker.method.atlas.colour import robust_channel_affine
    from deflicker.method.atlas.texture import unclipped

    synth = make_clip("fade_black_w3_chelsea", size=(72, 96), frames=72)
    analysis = analyze_clip(ArraySource(synth.flickering, fps=24.0), Settings(analysis_size=96))
    atlas = analysis.atlases[0]
    worst = 0.0
    for t, frame in enumerate(synth.flickering):
        a = atlas.frame(t).reshape(-1, 3).astype(np.float64)
        p = analysis.proxy(frame).reshape(-1, 3).astype(np.float64)
        free = unclipped(p)
        if free.mean() < 0.5:  # the black end of the fade: nothing left to fit
            continue
        g, b = robust_channel_affine(a, p)
        stored = np.median(np.abs(atlas.colour[t, 0] * a + atlas.colour[t, 1] - p)[free])
        fresh = np.median(np.abs(g * a + b - p)[free])
        worst = max(worst, stored / fresh)
    assert worst < 1.1, worst  # measured 1.02 (the fit sees every 4th pixel); 2.7 renormalized alone


def test_atlas_confidence_is_low_on_the_moving_object(clip, analysis):
    conf = [analysis.atlas_confidence(t, analysis.proxy(clip.flickering[t])) for t in range(len(clip.flickering))]
    conf = np.stack(conf)
    assert conf.min() >= 0.0 and conf.max() <= 1.0
    valid = clip.valid_prev[1:]
    assert conf[1:][valid].mean() > conf[1:][~valid].mean()


def test_arrays_round_trip_render_the_same(analysis):
    again = ClipAnalysis.from_arrays(analysis.to_arrays())
    for t in (0, 5, 11):
        assert np.array_equal(again.atlas_frame(t), analysis.atlas_frame(t))
    old = dict(analysis.to_arrays(), version=np.array(0))
    with pytest.raises(ModelLoadError):
        ClipAnalysis.from_arrays(old)
    with pytest.raises(ModelLoadError):
        ClipAnalysis.from_arrays({k: v for k, v in analysis.to_arrays().items() if k != "shots"})


def test_scene_cut_splits_shots_and_repeats_map_to_the_first():
    a = make_clip("global_w1_astronaut", size=(48, 64), frames=6, seed=1).flickering
    b = make_clip("global_w1_coffee", size=(48, 64), frames=6, seed=1).flickering
    frames = np.concatenate([a, b[:3], b[2:3], b[3:]])  # a cut after 6, frame 9 repeats 8
    result = analyze_clip(ArraySource(frames), SMALL)
    assert list(result.shots) == [0, 6, len(frames)]
    assert result.canonical[9] == 8 and result.canonical[8] == 8 and result.canonical[3] == 3
    assert result.shot_range(7) == (6, len(frames))


def test_hdr_clip_proxies_sit_near_unit_range(clip):
    bright = clip.flickering * np.float32(8.0)
    result = analyze_clip(ArraySource(bright[:6]), SMALL)
    assert result.scale > 4.0
    assert result.proxy(bright[0]).max() < 2.0


def test_progress_and_cancel(clip):
    seen: list[float] = []
    analyze_clip(ArraySource(clip.flickering[:4]), SMALL, progress=lambda f, _: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen)
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(Cancelled):
        analyze_clip(ArraySource(clip.flickering), SMALL, cancel=cancel)


def test_local_flicker_level_tells_global_from_local_flicker(analysis):
    # the module's clip has global flicker (per-frame gain, colour and offset)
    assert analysis.local_level(0) < 0.3
    local = make_clip("local_rocket", size=(48, 64), frames=12, seed=2)
    level = analyze_clip(ArraySource(local.flickering), SMALL).local_level(0)
    assert level > 0.7, level
    restored = ClipAnalysis.from_arrays(analysis.to_arrays())
    assert restored.local_level(0) == analysis.local_level(0)


def test_lossy_repeats_map_to_their_first_occurrence_and_new_frames_do_not():
    from deflicker.method.analysis import read_proxies
    from deflicker.synth.content_change import lossy_h264
    from tests._clips import film_repeats, flicker_clip

    _, noisy = flicker_clip(n=6)
    doubled, first = film_repeats(noisy)
    coded = lossy_h264(doubled, 24.0)  # libx264: every repeat differs a little from its original
    settings = Settings(analysis_size=64)
    _, canonical, _ = read_proxies(ArraySource(coded), settings, None, None)
    assert list(canonical) == first
    # a frame panned by half a pixel, or the same frame 4% brighter, is new content, also after coding
    frame = noisy[0]
    shifted = cv2.warpAffine(frame, np.float32([[1, 0, 0.5], [0, 1, 0]]), frame.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    near = lossy_h264(np.stack([frame, shifted, shifted * np.float32(1.04)]), 24.0)
    _, canonical, _ = read_proxies(ArraySource(near), settings, None, None)
    assert list(canonical) == [0, 1, 2]
