"""A long clip analysed in segments: the fixed grid, the blend between segments, a first render
that reads one segment, per-segment cache entries, and an aborted analysis that resumes."""
from __future__ import annotations

import numpy as np
import pytest

from deflicker.engine import Engine
from deflicker.errors import Cancelled, InvalidSettingsError
from deflicker.io.source import ArraySource, SubSource
from deflicker.method.clip_key import FINGERPRINT_FRAMES, fingerprint_frames
from deflicker.io.clip import quantize
from deflicker.method.segments import BLEND_FRAMES, SEGMENT_OVERLAP, blend, segment_grid
from deflicker.server.model_server import ModelServer
from deflicker.settings import Settings
from tests._clips import flicker_clip

SEGMENT = 48
SMALL = Settings(analysis_size=64, segment_frames=SEGMENT)


class CountingSource(ArraySource):
    """An ArraySource that records the frames read, in order."""

    def __init__(self, frames: np.ndarray):
        super().__init__(frames)
        self.read: list[int] = []

    def __getitem__(self, index: int) -> np.ndarray:
        self.read.append(index)
        return super().__getitem__(index)


@pytest.fixture(scope="module")
def two() -> np.ndarray:
    """96 frames: two segments of 48, spans [0, 60) and [36, 96)."""
    return flicker_clip(n=2 * SEGMENT, h=24, w=32, seed=4)[1]


@pytest.fixture(scope="module")
def long_clip() -> np.ndarray:
    """480 frames: ten segments of 48."""
    return flicker_clip(n=10 * SEGMENT, h=24, w=32, seed=6)[1]


def test_the_grid_is_fixed_by_length_and_size_alone() -> None:
    assert segment_grid(399, 200) == segment_grid(399, 0)  # under two segments: the whole clip
    (whole,) = segment_grid(399, 200)
    assert (whole.first, whole.stop, len(whole)) == (0, 399, 399)
    grid = segment_grid(2000, 200)
    assert len(grid) == 10 and [s.start for s in grid] == list(range(0, 2000, 200))
    assert all(s.end - s.start == 200 for s in grid)
    assert (grid[0].first, grid[0].stop) == (0, 200 + SEGMENT_OVERLAP)
    assert (grid[4].first, grid[4].stop) == (800 - SEGMENT_OVERLAP, 1000 + SEGMENT_OVERLAP)
    last = segment_grid(2399, 200)[-1]  # the remainder joins the last segment
    assert (last.start, last.end, last.stop) == (2000, 2399, 2399)
    for t in (0, 250, 1999):  # t's span holds its render: the grid never moves with t
        assert all(s.first <= t < s.stop for s, _ in blend(grid, t))
    with pytest.raises(InvalidSettingsError):
        Settings(segment_frames=20)


def test_blend_weights_ramp_linearly_across_each_cut() -> None:
    grid = segment_grid(1000, 200)
    later = []
    for t in range(1000):
        parts = blend(grid, t)
        assert abs(sum(w for _, w in parts) - 1.0) < 1e-12
        later.append(sum(w * s.index for s, w in parts))  # continuous: the segment index, blended
    steps = np.diff(later)
    assert np.allclose(steps[steps > 0], 1.0 / (BLEND_FRAMES + 1))
    assert (steps >= 0).all() and np.isclose(later[-1], 4.0)
    assert [len(blend(grid, t)) for t in (199 - SEGMENT_OVERLAP, 200 - SEGMENT_OVERLAP, 199 + SEGMENT_OVERLAP,
                                          200 + SEGMENT_OVERLAP)] == [1, 2, 2, 1]


def test_a_frame_near_a_cut_is_both_spans_renders_blended(two, tmp_path) -> None:
    """Each segment renders as the whole-clip analysis of its span would (same frames, same
    settings); near the cut the output is the two blended with the grid's weights."""
    session = Engine(SMALL, cache_dir=tmp_path / "segmented").open(ArraySource(two))
    a, b = session.segments.grid
    spans = [Engine(SMALL.replace(segment_frames=0), cache_dir=tmp_path / f"span{s.index}").open(
        SubSource(ArraySource(two), s.first, s.stop)) for s in (a, b)]
    for t in (a.end - SEGMENT_OVERLAP - 1, a.end - SEGMENT_OVERLAP, a.end, a.end + SEGMENT_OVERLAP - 1,
              a.end + SEGMENT_OVERLAP):
        out = session.render(t)
        parts = blend(session.segments.grid, t)
        want = spans[parts[0][0].index].render(t - parts[0][0].first)
        if len(parts) == 2:
            other = spans[1].render(t - b.first)
            want[..., :3] += np.float32(parts[1][1]) * (other[..., :3] - want[..., :3])
        assert np.array_equal(out, want), t
        assert np.array_equal(session.render(t, depth=16), quantize(want, 16)), t  # an output's pixels


def test_the_first_render_of_a_long_clip_reads_one_segment(long_clip, tmp_path) -> None:
    source = CountingSource(long_clip)
    session = Engine(SMALL, cache_dir=tmp_path).open(source)
    t = 5 * SEGMENT + SEGMENT // 2  # the middle of segment 5: one segment, no blend
    assert len(source.read) == FINGERPRINT_FRAMES  # opening reads the fingerprint only
    declared = session.frames_needed(t)
    span = session.segments.grid[5]
    assert declared == [(span.first, span.stop - 1)]
    assert not session.in_cache(t)
    session.render(t)
    read = set(source.read[FINGERPRINT_FRAMES:])
    assert read == set(range(span.first, span.stop)), sorted(read)
    assert len(source.read) - FINGERPRINT_FRAMES <= len(span) + 2 * SMALL.refine.window + 2
    assert session.status() == "analysed 1 of 10 segments" and session.in_cache(t) and not session.in_cache()
    (window,) = session.frames_needed(t)  # analysed: only the refinement window (inside t's shot)
    assert window[0] <= t <= window[1] and window[1] - window[0] <= 2 * SMALL.refine.window


def test_each_segment_has_its_own_cache_entry(two, tmp_path) -> None:
    first = Engine(SMALL, cache_dir=tmp_path).open(ArraySource(two))
    first.analyze()
    names = sorted(p.name for p in tmp_path.glob("*.npz"))
    digest = first.key.digest()
    assert names == sorted(f"{digest}-{s.first}-{s.stop}.npz" for s in first.segments.grid)
    source = CountingSource(two)
    again = Engine(SMALL, cache_dir=tmp_path).open(source)
    assert again.in_cache() and again.status() == "analysed 0 of 2 segments"
    out = again.render(80)  # segment 1 loaded from its entry, nothing analysed
    assert len(set(source.read)) <= FINGERPRINT_FRAMES + 2 * SMALL.refine.window + 1
    assert np.array_equal(out, first.render(80))


def test_an_aborted_analysis_resumes_where_it_stopped(two, tmp_path) -> None:
    source = CountingSource(two)
    session = Engine(SMALL, cache_dir=tmp_path / "resumed").open(source)
    span = session.segments.grid[1]
    t = span.end - 1
    seen = {"flows": 0}

    def cancel_after_some_flows(fraction: float, label: str) -> None:
        seen["flows"] += label.startswith("flow")

    with pytest.raises(Cancelled):
        session.render(t, progress=cancel_after_some_flows, cancel=lambda: seen["flows"] >= 20)
    work = session.segments.work(1)
    assert work is not None and work.read == len(span) and work.flowed == 20  # every frame read, 20 flows done
    assert not list((tmp_path / "resumed").glob("*.npz"))  # nothing half made is stored
    before = len(source.read)
    out = session.render(t)
    assert len(source.read) - before <= 2 * SMALL.refine.window + 2  # no frame read again for the analysis
    assert session.segments.work(1) is None
    fresh = Engine(SMALL, cache_dir=tmp_path / "fresh").open(ArraySource(two))
    assert np.array_equal(out, fresh.render(t))  # the resumed analysis is the uninterrupted one


def test_the_server_declares_what_a_first_render_reads(tmp_path) -> None:
    """Before the clip is opened, from its facts alone: the fingerprint frames and t's spans (the
    plugin's default segments of 200); then the render reads exactly those."""
    server = ModelServer(cache_dir=tmp_path)
    frames = flicker_clip(n=420, h=24, w=32, seed=2)[1]
    n, h, w = frames.shape[:3]
    facts = {"width": w, "height": h, "channels": 3, "frame_count": n}
    plugin = {"analysis_size": 64}
    grid = segment_grid(n, Settings().segment_frames)
    assert len(grid) == 2 and server.frames_needed("", 50, plugin) == []
    at_cut = server.frames_needed("", 200, plugin, facts)
    assert {i for a, b in at_cut for i in range(a, b + 1)} == set(fingerprint_frames(n)) | set(range(n))
    declared = server.frames_needed("", 50, plugin, facts)
    want = set(fingerprint_frames(n)) | set(range(grid[0].first, grid[0].stop))
    assert {i for a, b in declared for i in range(a, b + 1)} == want
    read: list[int] = []

    def fetch(i: int) -> np.ndarray:
        read.append(i)
        return frames[i]

    key = server.open_clip("node", facts, plugin, fetch)
    server.render(key, 50, fetch, plugin)
    assert set(read) == want
    assert server.status(key) == "analysed 1 of 2 segments"
    assert server.frames_needed(key, 50, plugin, facts) == [(50 - 3, 50 + 3)]  # analysed: the refinement window
