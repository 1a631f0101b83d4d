"""deflicker.server.model_server: the per-clip model server behind the OFX bridge."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from deflicker import Cancelled, Engine, Settings, VideoIOError
from deflicker.server.model_server import PREMULTIPLIED_SUFFIX, ModelServer
from deflicker.io.source import ArraySource
from tests._clips import flicker_clip

PLUGIN = {"strength": 1.0, "method": "fast", "local_refinement": True, "analysis_size": 64}


@pytest.fixture(scope="module")
def frames():
    _, noisy = flicker_clip(n=10, alpha=True)
    return noisy


def _info(frames, bit_depth=32):
    n, h, w, c = frames.shape
    return {"width": w, "height": h, "channels": c, "frame_count": n, "fps": 24.0, "bit_depth": bit_depth}


def _bottom_up_views(frames):
    """fetch() returning top-down views of bottom-up buffers (negative row stride), like an OFX host."""
    flipped = [np.ascontiguousarray(f[::-1]) for f in frames]
    return lambda i: flipped[i][::-1]


def test_render_matches_engine_and_handles_negative_strides(frames, tmp_path):
    server = ModelServer(cache_dir=tmp_path)
    fetch = _bottom_up_views(frames)
    key = server.open_clip("a", _info(frames), PLUGIN, fetch)
    assert server.status(key) == "not analysed"
    out = server.render(key, 4, fetch, PLUGIN)
    assert server.status(key) == "analysed"
    engine_out = Engine(Settings(analysis_size=64), cache_dir=tmp_path).open(ArraySource(frames)).render(4)
    assert np.array_equal(out, engine_out)
    assert np.array_equal(out[..., 3], frames[4][..., 3])


@pytest.mark.parametrize("bits", [8, 16])
def test_integer_frames_are_normalized_like_decoded_files(frames, tmp_path, bits):
    server = ModelServer(cache_dir=tmp_path)
    maxval, dtype = (255, np.uint8) if bits == 8 else (65535, np.uint16)
    ints = np.rint(np.clip(frames, 0, 1) * maxval).astype(dtype)
    as_read = ints.astype(np.float32) / np.float32(maxval)  # what deflicker.io.files gives `deflicker run`
    key = server.open_clip("a", _info(ints, bits), PLUGIN, lambda i: ints[i])
    out = server.render(key, 2, lambda i: ints[i], PLUGIN)
    engine_out = Engine(Settings(analysis_size=64), cache_dir=tmp_path).open(ArraySource(as_read, bit_depth=bits)).render(2)
    assert out.dtype == np.float32 and np.array_equal(out, engine_out)


def test_evicted_sessions_reopen_from_the_disk_cache(frames, tmp_path):
    server = ModelServer(cache_dir=tmp_path, max_sessions=1)
    other = frames[::-1].copy()
    calls = {"n": 0}

    def fetch(i):
        calls["n"] += 1
        return frames[i]

    key = server.open_clip("a", _info(frames), PLUGIN, fetch)
    first = server.render(key, 3, fetch, PLUGIN)
    key_b = server.open_clip("b", _info(other), PLUGIN, lambda i: other[i])
    server.render(key_b, 3, lambda i: other[i], PLUGIN)  # evicts the first clip's session
    stored = sorted(p.name for p in tmp_path.iterdir())
    calls["n"] = 0
    assert np.array_equal(server.render(key, 3, fetch, PLUGIN), first)
    from deflicker.method.clip_key import FINGERPRINT_FRAMES  # reopening reads the fingerprint frames, the window, t

    window = sum(b - a + 1 for a, b in server.frames_needed(key, 3, PLUGIN))
    reopen = min(FINGERPRINT_FRAMES, len(frames)) + window + 1
    assert calls["n"] <= reopen, f"{calls['n']} fetches: the reopened clip was analysed again instead of loaded"
    assert sorted(p.name for p in tmp_path.iterdir()) == stored
    assert server.frames_needed("never-opened", 3, PLUGIN) == []


def test_reanalyze_waits_for_renders_in_flight(frames, tmp_path):
    server = ModelServer(cache_dir=tmp_path)
    key = server.open_clip("ui", _info(frames), PLUGIN, lambda i: frames[i])
    server.analyze(key, lambda i: frames[i])
    inside, release = threading.Event(), threading.Event()

    def slow(i):
        inside.set()
        release.wait(10)
        return frames[i]

    progress: list[float] = []
    rendered: dict[str, np.ndarray] = {}
    render = threading.Thread(target=lambda: rendered.__setitem__("t", server.render(key, 5, slow, PLUGIN)))
    render.start()
    assert inside.wait(10)
    again = threading.Thread(target=lambda: server.reanalyze(key, lambda i: frames[i], lambda f, _: progress.append(f)))
    again.start()
    again.join(0.5)
    assert again.is_alive() and not progress, "the reanalysis started under a render in flight"
    release.set()
    render.join(10)
    again.join(60)
    assert "t" in rendered and progress and progress[-1] == pytest.approx(1.0)
    assert np.array_equal(server.render(key, 5, lambda i: frames[i], PLUGIN), rendered["t"])


def test_instances_share_a_clip_and_eviction(frames, tmp_path):
    server = ModelServer(cache_dir=tmp_path)
    fetch = lambda i: frames[i]  # noqa: E731
    k1 = server.open_clip("ui", _info(frames), PLUGIN, fetch)
    k2 = server.open_clip("render", _info(frames), PLUGIN, fetch)
    assert k1 == k2
    other = server.open_clip("ui", _info(frames), {**PLUGIN, "analysis_size": 96}, fetch)
    assert other != k1
    server.analyze(k1, fetch)
    server.close_instance("ui")
    assert server.status(k1) == "analysed"  # still used by "render"
    server.close_instance("render")
    with pytest.raises(ValueError):
        server.render(k1, 0, fetch, PLUGIN)


def test_parallel_renders_wait_for_one_analysis(frames, tmp_path):
    server = ModelServer(cache_dir=tmp_path)
    calls = {"n": 0}
    lock = threading.Lock()

    def fetch(i):
        with lock:
            calls["n"] += 1
        return frames[i]

    key = server.open_clip("a", _info(frames), PLUGIN, fetch)
    before = calls["n"]
    results: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda t=t: results.__setitem__(t, server.render(key, t, fetch, PLUGIN)))
               for t in (1, 5, 8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == [1, 5, 8]
    # one analysis pass reads each frame once; renders read small windows on top
    assert calls["n"] - before < 2 * len(frames) + 3 * 5


def test_cancel_and_reanalyze(frames, tmp_path):
    server = ModelServer(cache_dir=tmp_path)
    fetch = lambda i: frames[i]  # noqa: E731
    key = server.open_clip("a", _info(frames), PLUGIN, fetch)
    with pytest.raises(Cancelled):
        server.analyze(key, fetch, cancel=lambda: True)
    assert "failed" not in server.status(key)
    first = server.render(key, 3, fetch, PLUGIN)
    seen = []
    server.reanalyze(key, fetch, progress=lambda f, label: seen.append(f))
    assert seen and seen[-1] == pytest.approx(1.0)
    assert np.array_equal(server.render(key, 3, fetch, PLUGIN), first)


@pytest.mark.parametrize("bad", ["nan", "size", "missing"])
def test_bad_frames_raise_clear_errors(frames, tmp_path, bad):
    server = ModelServer(cache_dir=tmp_path)
    good = lambda i: frames[i]  # noqa: E731

    def broken(i):
        if i != 6:
            return frames[i]
        if bad == "nan":
            f = frames[i].copy()
            f[3, 3, 0] = np.nan
            return f
        if bad == "size":
            return frames[i][:-1]
        return None

    key = server.open_clip("a", _info(frames), PLUGIN, good)
    with pytest.raises(VideoIOError) as err:
        server.analyze(key, broken)
    assert "frame 6" in str(err.value)
    assert server.status(key).startswith("failed")
    server.analyze(key, good)  # the server is unharmed
    assert server.status(key) == "analysed"


def test_premultiplied_clip_is_corrected_on_straight_colour_and_shares_the_analysis(frames, tmp_path):
    # Alpha 0, 1/2 and 1 in bands: colour * alpha and back is exact in float, so the premultiplied
    # source is the straight picture bit for bit once unpremultiplied (colour 0 where alpha is 0).
    straight = frames.copy()
    straight[..., 3] = np.float32(1.0)
    straight[:, :, : straight.shape[2] // 3, 3] = np.float32(0.5)
    straight[:, :, :4, 3] = np.float32(0.0)
    straight[..., :3] *= (straight[..., 3:] > 0).astype(np.float32)
    premultiplied = straight.copy()
    premultiplied[..., :3] *= premultiplied[..., 3:]
    server = ModelServer(cache_dir=tmp_path, max_sessions=1)
    key = server.open_clip("a", _info(straight), PLUGIN, lambda i: straight[i])
    pm_key = server.open_clip("b", {**_info(premultiplied), "premultiplied": True}, PLUGIN, lambda i: premultiplied[i])
    assert pm_key == key + PREMULTIPLIED_SUFFIX  # one analysis (cache digest), two in-memory entries
    out = server.render(key, 3, lambda i: straight[i], PLUGIN)
    pm_out = server.render(pm_key, 3, lambda i: premultiplied[i], PLUGIN)  # evicts the straight session: from disk
    assert not np.allclose(out[..., :3], straight[3][..., :3], atol=0.01)  # it corrected something
    assert np.array_equal(pm_out[..., 3], premultiplied[3][..., 3])
    np.testing.assert_allclose(pm_out[..., :3], out[..., :3] * out[..., 3:], rtol=0, atol=1e-6)
    assert (pm_out[:, :4, :3] == 0).all()
    # The session reopens with the same premultiplied key after an eviction.
    assert np.array_equal(server.render(key, 3, lambda i: straight[i], PLUGIN), out)
    assert np.array_equal(server.render(pm_key, 3, lambda i: premultiplied[i], PLUGIN), pm_out)
