"""deflicker.Engine: purity of render, strength, alpha, range, repeated frames, quality."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from deflicker import Engine, InvalidSettingsError, Settings
from deflicker.io.source import ArraySource
from tests._clips import film_repeats, flicker_clip

SMALL = Settings(analysis_size=64)


@pytest.fixture(scope="module")
def clip():
    return flicker_clip(n=12)


def _session(frames, settings=SMALL, cache_dir=None):
    return Engine(settings, cache_dir=cache_dir).open(ArraySource(frames))


def test_render_is_order_and_thread_independent(clip, tmp_path):
    _, noisy = clip
    n = len(noisy)
    session = _session(noisy, cache_dir=tmp_path)
    in_order = [session.render(t) for t in range(n)]
    backwards_session = _session(noisy, cache_dir=tmp_path)
    backwards = {t: backwards_session.render(t) for t in reversed(range(n))}
    alone = _session(noisy, cache_dir=tmp_path).render(7)
    threaded: dict[int, np.ndarray] = {}
    shared = _session(noisy, cache_dir=tmp_path)

    def work(ts):
        for t in ts:
            threaded[t] = shared.render(t)

    threads = [threading.Thread(target=work, args=(list(range(i, n, 2)),)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t in range(n):
        assert np.array_equal(in_order[t], backwards[t]), t
        assert np.array_equal(in_order[t], threaded[t]), t
    assert np.array_equal(in_order[7], alone)


def test_strength_zero_is_identity_and_alpha_untouched(tmp_path):
    _, noisy = flicker_clip(n=8, alpha=True)
    session = _session(noisy, cache_dir=tmp_path)
    zero = session.render(3, SMALL.replace(strength=0.0))
    assert np.array_equal(zero, noisy[3])
    full = session.render(3)
    assert full.shape == noisy[3].shape
    assert np.array_equal(full[..., 3], noisy[3][..., 3])
    assert not np.array_equal(full[..., :3], noisy[3][..., :3])


def test_values_above_one_are_kept(tmp_path):
    _, noisy = flicker_clip(n=8, hdr=4.0)
    out = _session(noisy, cache_dir=tmp_path).render(4)
    assert out.max() > 1.5
    assert np.isfinite(out).all()


def test_repeated_frames_give_repeated_output(clip, tmp_path):
    _, noisy = clip
    frames = list(noisy[:6]) + [noisy[5]] + list(noisy[6:10])
    session = _session(np.stack(frames), cache_dir=tmp_path)
    assert np.array_equal(session.render(5), session.render(6))


def _brightness(frames: np.ndarray) -> np.ndarray:
    return np.asarray(frames)[..., :3].mean(axis=(1, 2, 3))


@pytest.fixture(scope="module")
def fade(tmp_path_factory):
    """The synthetic set's 72-frame dusk fade (a 60-frame ramp) under W = 1 flicker at 24 fps
    (auto Keep slow changes: 24 frames), 64x48, analysed."""
    from deflicker.synth.clips import make_clip

    synth = make_clip("fade_dusk_w1_coffee", size=(48, 64), frames=72)
    clean, flickering = synth.clean, synth.flickering
    session = Engine(SMALL, cache_dir=tmp_path_factory.mktemp("fade")).open(ArraySource(flickering, fps=24.0))
    session.analyze()
    return clean, flickering, session


def test_a_fade_survives_and_its_flicker_goes(fade):
    clean, flickering, session = fade
    out = np.stack([session.render(t) for t in range(len(session))])
    truth = _brightness(clean)
    assert np.corrcoef(truth, _brightness(out))[0, 1] >= 0.98
    assert np.corrcoef(truth, _brightness(flickering))[0, 1] < 0.9  # the flicker hides the ramp in the input
    # the flicker around the ramp is removed: frame-to-frame brightness jumps well below the input's
    assert np.abs(np.diff(_brightness(out) - truth)).mean() < 0.3 * np.abs(np.diff(_brightness(flickering) - truth)).mean()


def test_keep_slow_zero_flattens_the_fade(fade):
    clean, _, session = fade
    flat = np.stack([session.render(t, SMALL.replace(keep_slow=0)) for t in range(len(session))])
    level = _brightness(flat)
    assert level.max() - level.min() < 0.25 * (_brightness(clean).max() - _brightness(clean).min())


def test_a_w3_fade_to_black_lands_on_its_ramp(tmp_path):
    """A fade to black under W = 3 flicker (the synthetic set's clip at 96x72, proxy at full size)
    keeps its ramp and its colour: the atlas's stored colours map its stored texture, so the
    slow trend carries the frames along the truth's ramp (when the last colour fit was
    renormalized alone, the red channel fell away: PSNR 11.7 dB, 13 dB under the input's)."""
    from deflicker.bench.metrics import psnr
    from deflicker.synth.clips import make_clip

    synth = make_clip("fade_black_w3_chelsea", size=(72, 96), frames=72)
    session = Engine(Settings(analysis_size=96), cache_dir=tmp_path).open(ArraySource(synth.flickering, fps=24.0))
    out = np.stack([session.render(t) for t in range(len(session))])
    assert np.corrcoef(_brightness(synth.clean), _brightness(out))[0, 1] >= 0.98
    assert psnr(out, synth.clean) >= psnr(synth.flickering, synth.clean) + 6.0  # measured +7.4 dB


def test_keep_slow_does_not_keep_flicker_of_a_short_clip(clip, tmp_path):
    """Flicker levels in a clip shorter than the span are no slow change: auto flattens as 0 does."""
    _, noisy = clip
    session = _session(noisy, cache_dir=tmp_path)
    for t in (0, 5, 11):
        assert np.array_equal(session.render(t), session.render(t, SMALL.replace(keep_slow=0)))


def test_lossy_repeats_render_identically(tmp_path):
    from deflicker.synth.content_change import lossy_h264

    _, noisy = flicker_clip(n=8)
    doubled, first = film_repeats(noisy)
    coded = lossy_h264(doubled, 24.0)  # a real libx264 round trip: repeats near-identical, not bit-exact
    pairs = [(t, f) for t, f in enumerate(first) if t != f]
    assert max(np.abs(coded[t] - coded[f]).max() for t, f in pairs) > 1.5 / 255
    session = _session(coded, cache_dir=tmp_path)
    for t, f in pairs:
        assert np.abs(session.render(t) - session.render(f)).max() <= 1.0 / 255


def test_analysis_settings_cannot_change_at_render(clip, tmp_path):
    _, noisy = clip
    session = _session(noisy, cache_dir=tmp_path)
    with pytest.raises(InvalidSettingsError):
        session.render(0, SMALL.replace(analysis_size=128))
    with pytest.raises(InvalidSettingsError):
        session.render(len(noisy))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def _flicker(frames: np.ndarray, clean: np.ndarray) -> float:
    """Mean frame-to-frame change of the brightness error against the clean clip."""
    error = frames[..., :3].mean(axis=(1, 2, 3)) - clean[..., :3].mean(axis=(1, 2, 3))
    return float(np.abs(np.diff(error)).mean())


def test_deflicker_removes_global_flicker(clip, tmp_path):
    clean, noisy = clip
    session = _session(noisy, cache_dir=tmp_path)
    full = np.stack([session.render(t) for t in range(len(noisy))])
    assert _flicker(full, clean) < 0.15 * _flicker(noisy, clean)
    assert _psnr(full, clean) > _psnr(noisy, clean) + 5


def test_filter_beats_atlas_only_at_full_resolution(tmp_path):
    """A detailed clip above the proxy size: A_t alone is blurred, the filter keeps the input's detail."""
    from deflicker.settings import FilterSettings

    clean, noisy = flicker_clip(n=10, h=96, w=128, zoom=1.0, seed=3)
    session = _session(noisy, cache_dir=tmp_path)
    atlas = np.stack([session.render(t, stage="atlas") for t in range(len(noisy))])
    network = SMALL.replace(filter=FilterSettings(locality=1.0))  # the committed weights' own correction
    for settings in (network, SMALL):
        full = np.stack([session.render(t, settings) for t in range(len(noisy))])
        assert _psnr(full, clean) > _psnr(atlas, clean) + 0.5
        assert _flicker(full, clean) < 0.15 * _flicker(noisy, clean)


def test_cache_is_reused_across_sessions(clip, tmp_path):
    _, noisy = clip
    first = _session(noisy, cache_dir=tmp_path)
    first.analyze()
    second = _session(noisy, cache_dir=tmp_path)
    second.analyze()
    assert first.cache_path == second.cache_path
    assert np.array_equal(first.render(2), second.render(2))


def test_reanalyze_while_rendering_keeps_renders_whole(clip, tmp_path):
    _, noisy = clip
    session = _session(noisy, cache_dir=tmp_path)
    expected = session.render(6)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def renders() -> None:
        try:
            for _ in range(6):
                results.append(session.render(6))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=renders)
    worker.start()
    session.analyze(force=True)
    session.analyze(force=True)
    worker.join()
    assert not errors
    assert all(np.array_equal(r, expected) for r in results)


def test_neural_method_renders_through_the_engine_and_cache(tmp_path):
    from deflicker.settings import AtlasSettings

    _, noisy = flicker_clip(n=6)
    tiny = Settings(analysis_size=64, method="neural",
                    atlas=AtlasSettings(neural_iterations=20, neural_width=16, neural_batch=256))
    first = Engine(tiny, cache_dir=tmp_path).open(ArraySource(noisy))
    out = first.render(2)
    assert out.shape == noisy[2].shape and np.isfinite(out).all()
    again = Engine(tiny, cache_dir=tmp_path).open(ArraySource(noisy))
    again.analyze()
    assert again.cache_path == first.cache_path
    assert np.array_equal(again.render(2), out)


def test_flat_flickering_clip_is_one_shot_and_keeps_its_level(tmp_path):
    """A clear sky or a grey card: no structure to match, only the flicker. It is one shot (not
    a cut at every frame) and the output keeps the clip's average level, steady."""
    rng = np.random.default_rng(0)
    gains = rng.uniform(0.7, 1.3, 8).astype(np.float32)
    frames = np.full((8, 48, 64, 3), 0.5, np.float32) * gains[:, None, None, None]
    frames += rng.normal(0, 0.003, frames.shape).astype(np.float32)  # sensor noise
    session = _session(frames, cache_dir=tmp_path)
    (analysis,) = session.analyze()  # a short clip: one segment
    assert list(analysis.shots) == [0, 8]
    means = np.stack([session.render(t) for t in range(8)]).mean(axis=(1, 2, 3))
    assert np.ptp(means) < 0.01 * np.ptp(frames.mean(axis=(1, 2, 3)))
    assert abs(means.mean() - frames.mean()) < 0.05


def test_render_in_order_keeps_at_most_workers_plus_one_frames_queued(clip, tmp_path):
    from deflicker.render_queue import render_in_order

    session = _session(clip[1], cache_dir=tmp_path)
    session.analyze()
    started: list[int] = []
    render = session.render

    def counting_render(t, **kwargs):
        started.append(t)
        return render(t, **kwargs)

    session.render = counting_render  # the real renders, counted as the pool starts them
    workers, consumed = 2, 0
    for t, frame in render_in_order(session, len(session), workers=workers):
        assert t == consumed and np.array_equal(frame, render(t))  # in order, the same pixels
        consumed += 1
        assert max(started) <= t + workers + 1  # queued beyond the frame handed out: workers + 1
    assert sorted(started) == list(range(len(session)))


@pytest.mark.parametrize("order", ["forwards", "backwards"])
def test_the_render_memo_keeps_what_one_render_at_a_time_needs_and_no_more(clip, tmp_path, monkeypatch, order):
    import deflicker.method.filter as filter_module
    from deflicker.method.frame_render import memo_entries

    session = _session(clip[1], cache_dir=tmp_path)
    session.analyze()
    predicted: list[int] = []
    predict = filter_module.predict_coefficients

    def counting(*args, **kwargs):
        predicted.append(1)
        return predict(*args, **kwargs)

    monkeypatch.setattr(filter_module, "predict_coefficients", counting)
    memo, k, n = session._frames._memo, SMALL.refine.window, len(session)
    largest = 0
    for t in range(n) if order == "forwards" else reversed(range(n)):
        session.render(t)
        largest = max(largest, len(memo))
    assert len(predicted) == n  # each frame's coefficients made once: the window's frames were kept
    assert largest == memo_entries(k, 1) < n * (1 + 4 * k)  # not every frame and flow of the clip


def test_renders_side_by_side_make_their_shared_neighbours_once(clip, tmp_path, monkeypatch):
    import deflicker.method.filter as filter_module
    import deflicker.method.flow as flow_module

    session = _session(clip[1], cache_dir=tmp_path)
    session.analyze()
    made: list[str] = []
    predict, estimate = filter_module.predict_coefficients, flow_module.estimate_flow

    def slow(name, make):
        def counted(*args, **kwargs):
            made.append(name)
            threading.Event().wait(0.02)  # long enough for the other render to ask for it too
            return make(*args, **kwargs)
        return counted

    monkeypatch.setattr(filter_module, "predict_coefficients", slow("coefficients", predict))
    monkeypatch.setattr(flow_module, "estimate_flow", slow("flow", estimate))
    renderer, k = session._frames, SMALL.refine.window
    together = threading.Barrier(2)
    render = renderer._render

    def held(*args):
        together.wait(timeout=60)  # both renders start at once
        return render(*args)

    renderer._render = held
    got: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda t=t: got.__setitem__(t, session.render(t))) for t in (5, 6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Frames 2..9 are in one window or both; each flow f_{a->b} between a rendered frame and a
    # neighbour (the pair 5, 6 both ways shared): 2 * 2k per render, less the two shared.
    assert made.count("coefficients") == len(range(5 - k, 6 + k + 1))
    assert made.count("flow") == 2 * (4 * k) - 2
    renderer._render = render
    for t in (5, 6):
        assert np.array_equal(got[t], _session(clip[1], cache_dir=tmp_path).render(t))


def test_a_failed_memo_value_is_made_again_by_the_next_render(clip, tmp_path, monkeypatch):
    import deflicker.method.filter as filter_module

    session = _session(clip[1], cache_dir=tmp_path)
    session.analyze()
    predict = filter_module.predict_coefficients

    def failing(*args, **kwargs):
        raise RuntimeError("filter failed")

    monkeypatch.setattr(filter_module, "predict_coefficients", failing)
    with pytest.raises(RuntimeError, match="filter failed"):
        session.render(4)
    assert session._frames._making == {}  # nothing left waiting on the failed maker
    monkeypatch.setattr(filter_module, "predict_coefficients", predict)
    assert np.array_equal(session.render(4), _session(clip[1], cache_dir=tmp_path).render(4))


def test_the_render_memo_grows_with_the_renders_in_flight(clip, tmp_path):
    from deflicker.method.frame_render import memo_entries

    session = _session(clip[1], cache_dir=tmp_path)
    session.analyze()
    renderer, k = session._frames, SMALL.refine.window
    together = threading.Barrier(3)
    render = renderer._render

    def held(*args):
        together.wait(timeout=60)  # three renders in flight at once
        return render(*args)

    renderer._render = held
    threads = [threading.Thread(target=session.render, args=(t,)) for t in (2, 5, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert renderer._memo_limit == memo_entries(k, 3) > memo_entries(k, 1)
    renderer._render = render
    session.render(4)  # one at a time again: the limit stays (the host may render in parallel again)
    assert renderer._memo_limit == memo_entries(k, 3) and len(renderer._memo) <= memo_entries(k, 3)


def test_render_in_order_finishes_each_frame_in_the_worker(clip, tmp_path):
    import threading

    from deflicker.io.clip import quantize
    from deflicker.render_queue import render_in_order

    session = _session(clip[1], cache_dir=tmp_path)
    session.analyze()
    threads: set[str] = set()

    def finish(frame, t):
        threads.add(threading.current_thread().name)
        return t, quantize(frame, 16)

    got = list(render_in_order(session, len(session), workers=2, finish=finish))
    assert [t for t, _ in got] == [u for _, (u, _) in got] == list(range(len(session)))
    for t, (_, pixels) in got:
        np.testing.assert_array_equal(pixels, quantize(session.render(t), 16))
    assert threads and all(name.startswith("deflicker-render") for name in threads)


def test_render_is_stable_under_sub_code_value_changes(tmp_path):
    """The same 8-bit media handed over as float and rounded to half precision (under 1/8 of a
    code value apart) renders alike with local refinement on: its render-time flows must not
    amplify the difference (DIS is not continuous in its input)."""
    from pathlib import Path

    from deflicker.io.files import open_clip

    clip = open_clip(Path(__file__).parent.parent / "samples" / "flicker_sample.mkv", end=16)
    frames = [np.asarray(clip[t], np.float32) for t in range(len(clip))]
    half = [f.astype(np.float16).astype(np.float32) for f in frames]
    assert 0 < max(np.abs(h - f).max() for h, f in zip(half, frames)) < 0.125 / 255
    settings = Settings(local_refinement=True)
    exact, rounded = _session(frames, settings, tmp_path), _session(half, settings, tmp_path)
    exact.analyze()
    rounded.analyze()
    assert exact.cache_path == rounded.cache_path  # one analysis: the difference is the render's
    worst = max(np.abs(exact.render(t) - rounded.render(t)).max() for t in range(16))
    assert worst <= 1.0 / 255, f"{worst * 255:.2f} code values apart"


@pytest.mark.xfail(strict=True, reason="float media whose code values change under half rounding: its render-time "
                   "DIS flows still jump (DIS is not continuous in its input) and the local refinement moves the "
                   "output by ~18/255; with local refinement off it moves by under 1/255")
def test_render_of_float_media_is_stable_under_half_rounding(tmp_path):
    _, frames = flicker_clip(n=12, h=96, w=128)
    half = frames.astype(np.float16).astype(np.float32)
    for refine in (False, True):
        settings = Settings(analysis_size=128, local_refinement=refine)
        exact, rounded = _session(frames, settings, tmp_path), _session(half, settings, tmp_path)
        worst = max(np.abs(exact.render(t) - rounded.render(t)).max() for t in range(len(frames)))
        assert worst <= 1.0 / 255, f"local_refinement={refine}: {worst * 255:.2f} code values apart"


@pytest.mark.parametrize("channels,analysis_size", [(3, 64), (4, 64), (3, 256)])
def test_a_render_writes_only_into_frames_it_owns_and_gives_the_same_pixels(tmp_path, channels, analysis_size):
    """A decoded file hands out frame copies the render writes its result into (no second
    frame-size array); an in-memory or host frame is never written. Both give the same pixels,
    letterbox and clipped highlights (every banded step) included, and with a proxy the frame's
    own size (256: a proxy kept for the neighbours' windows must not be the frame written into)."""
    from deflicker.io.files import open_clip, write_clip
    from deflicker.io.source import CallbackSource, owns_frames

    _, noisy = flicker_clip(n=8, h=144, w=256, alpha=channels == 4)  # proxy 36x64: upsampled 4x, banded
    settings = Settings(analysis_size=analysis_size)
    noisy = noisy.copy()
    noisy[:, :20, :, :3] = 0.0  # a letterbox bar
    noisy[..., :3] = np.clip(noisy[..., :3] * 1.4, 0.0, 1.0)  # clipped highlights
    path = write_clip(tmp_path / "c.%04d.tif", noisy, fps=24.0, bit_depth=32)
    engine = Engine(settings, cache_dir=tmp_path / "cache")
    with engine.open(path) as session:
        assert owns_frames(session.source)
        decoded = np.stack([session.source[t] for t in range(len(noisy))])
        from_file = [session.render(t) for t in range(len(noisy))]
    kept = decoded.copy()
    held = engine.open(ArraySource(decoded))
    fetched = engine.open(CallbackSource(held.source.info, lambda t: decoded[t]))
    assert not owns_frames(held.source) and not owns_frames(fetched.source)
    for t in range(len(noisy)):
        np.testing.assert_array_equal(held.render(t), from_file[t])
        np.testing.assert_array_equal(fetched.render(t), from_file[t])
    np.testing.assert_array_equal(decoded, kept)  # the caller's frames are untouched
    assert not np.array_equal(from_file[3][..., :3], decoded[3][..., :3])


@pytest.mark.parametrize("channels,analysis_size", [(3, 64), (4, 64), (3, 256)])
def test_a_render_from_stored_pixels_gives_the_float_frames_pixels(tmp_path, channels, analysis_size):
    """A 16-bit file's frames are read as the pixels it stores, a band of rows at a time (the
    neighbours for their proxies, the frame itself for its correction): the same render as its
    float frames give, letterbox, clipped highlights (every banded step) and alpha included, and
    with a proxy the frame's own size (256). At an output's depth it is that render quantized."""
    from deflicker.io.clip import quantize
    from deflicker.io.files import write_clip

    _, noisy = flicker_clip(n=8, h=144, w=256, alpha=channels == 4)
    noisy = noisy.copy()
    noisy[:, :20, :, :3] = 0.0  # a letterbox bar
    noisy[..., :3] = np.clip(noisy[..., :3] * 1.4, 0.0, 1.0)  # clipped highlights
    path = write_clip(tmp_path / "c.mkv", noisy, fps=24.0, bit_depth=16)
    engine = Engine(Settings(analysis_size=analysis_size), cache_dir=tmp_path / "cache")
    with engine.open(path) as session:
        decoded = np.stack([session.source[t] for t in range(len(noisy))])
        floats = [session.render(t) for t in range(len(noisy))]
        stored = [session.render(t, depth=16) for t in reversed(range(len(noisy)))][::-1]
        eight = session.render(3, depth=8)
    held = engine.open(ArraySource(decoded))
    for t in range(len(noisy)):
        np.testing.assert_array_equal(held.render(t), floats[t])
        assert stored[t].dtype == np.uint16 and stored[t].shape == decoded[t].shape
        np.testing.assert_array_equal(stored[t], quantize(floats[t], 16))
    assert eight.dtype == np.uint8
    np.testing.assert_array_equal(eight, quantize(floats[3], 8))
    assert not np.array_equal(floats[3][..., :3], decoded[3][..., :3])


def test_a_render_at_an_outputs_depth_makes_no_float_frame(tmp_path):
    """Rendered into the pixels its output stores, a frame of a 16-bit file takes its stored
    pixels' bytes and a few bands' temporaries (tens of MB whatever the frame size): no float
    frame (twice the bytes) is made, not of the frame, not of its neighbours (reading them as
    floats, a render held two float frames and the output's pixels)."""
    import tracemalloc

    from deflicker.io.files import write_clip

    _, frames = flicker_clip(n=6, h=1440, w=2560)
    path = write_clip(tmp_path / "c.mkv", frames, fps=24.0, bit_depth=16)
    with Engine(SMALL, cache_dir=tmp_path / "cache").open(path) as session:
        session.analyze()
        float_frame = frames[0].astype(np.float32).nbytes
        tracemalloc.start()
        try:
            out = session.render(3, depth=16)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert out.dtype == np.uint16
    assert out.nbytes <= peak < out.nbytes + float_frame, (peak, float_frame)
