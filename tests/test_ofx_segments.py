"""A long clip through the real bundle in the C++ test host (tests/host/ofxhost): the first render
reads one segment, GetFramesNeeded declares it, and an analysis cancelled from the host's
progress bar resumes on the next render (issue 15 point 1).

The clip: 2,000 frames of 64x48 (the issue's long clip), so ten segments of 200 (the plugin's
default); frame 1,100 lies inside the sixth, span [988, 1212), away from any blend.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _clips import flicker_clip
from test_ofx_host import BUNDLE, H, OFX_OK, W, HostRun, built, decode, run_host, write_clip

from deflicker.method.clip_key import fingerprint_frames
from deflicker.method.segments import segment_grid
from deflicker.settings import Settings

FRAMES = 2000
T = 1100
SMALL = ("--param", "analysis_size=64")


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, flickering = flicker_clip(FRAMES, H, W, seed=7)
    return write_clip(tmp_path_factory.mktemp("long") / "long.mkv", flickering, bits=8)


@pytest.fixture(scope="module")
def span() -> tuple[int, int]:
    """[first, stop) of the span of frame T's segment."""
    (segment,) = [s for s in segment_grid(FRAMES, Settings().segment_frames) if s.start <= T < s.end]
    return segment.first, segment.stop


@pytest.fixture(scope="module")
def first_render(long_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[HostRun, Path]:
    out = tmp_path_factory.mktemp("first") / "out.mkv"
    cache = tmp_path_factory.mktemp("first-cache")
    run = run_host("render", built(BUNDLE), long_clip, "-o", out, "--frames", f"{T}-{T}", *SMALL,
                   env={"DEFLICKER_CACHE_DIR": str(cache)})
    return run, out


def _declared(run: HostRun) -> set[int]:
    """Every frame GetFramesNeeded declared for frame T (its ranges are inclusive)."""
    events = [e for e in run.of("frames-needed") if e["status"] == OFX_OK and int(e["time"]) == T]
    assert events, run.explain()
    ranges = events[0]["ranges"]
    return {i for a, b in zip(ranges[::2], ranges[1::2]) for i in range(int(a), int(b) + 1)}


def test_the_first_render_of_a_long_clip_reads_one_segment(first_render, span):
    run, _ = first_render
    first, stop = span
    (render,) = run.of("render")
    assert render["status"] == OFX_OK, run.explain()
    # the fingerprint frames, the segment's span, the output's own source frame and the
    # refinement window read again at render time: never the other segments
    most = len(fingerprint_frames(FRAMES)) + (stop - first) + 2 * Settings().refine.window + 2
    assert stop - first <= render["fetched"] <= most < FRAMES, run.explain()


def test_get_frames_needed_declares_the_segment(first_render, span):
    run, _ = first_render
    first, stop = span
    assert _declared(run) == set(fingerprint_frames(FRAMES)) | set(range(first, stop))


@pytest.mark.parametrize("stop_by", ["--cancel-after", "--abort-after"])
def test_a_stopped_analysis_resumes_on_the_next_render(long_clip, first_render, span, tmp_path, stop_by):
    """Cancelled from the progress bar (or aborted by the host) while reading frames, the retried
    render of the same process goes on from the frames already read, and renders what an
    uninterrupted run renders."""
    _, reference = first_render
    first, stop = span
    out = tmp_path / "out.mkv"
    run = run_host("render", built(BUNDLE), long_clip, "-o", out, "--frames", f"{T}-{T}", *SMALL,
                   stop_by, "150", "--retry-failed", env={"DEFLICKER_CACHE_DIR": str(tmp_path / "cache")})
    cancelled, retried = run.of("render")
    assert cancelled["status"] != OFX_OK and retried["status"] == OFX_OK, run.explain()
    assert stop_by != "--cancel-after" or run.of("progress", what="update", cancel=1), run.explain()
    assert cancelled["fetched"] >= 100, run.explain()  # frames read before the cancel
    # the retry reads only what the cancelled render had not: the rest of the span and the window
    assert cancelled["fetched"] + retried["fetched"] <= (stop - first) + len(fingerprint_frames(FRAMES)) + 16, \
        run.explain()
    assert np.array_equal(decode(out, 8), decode(reference, 8))
