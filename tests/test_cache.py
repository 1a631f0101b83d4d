"""The on-disk analysis cache: keys, hits, misses, invalidation, corruption, races, CLI."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deflicker.cache import AnalysisCache, ClipKey, load_or_analyze
from deflicker.cli import main
from deflicker.errors import Cancelled
from deflicker.io import write_clip
from deflicker.settings import Settings
from deflicker.source import ArraySource
from tests._clips import flicker_clip

SMALL = Settings(analysis_size=64)


@pytest.fixture(scope="module")
def frames():
    return flicker_clip(n=8)[1]


class CountingSource(ArraySource):
    """An ArraySource that counts frame reads."""

    reads = 0

    def __getitem__(self, index: int) -> np.ndarray:
        self.reads += 1
        return super().__getitem__(index)


def test_key_covers_content_size_range_and_settings(frames):
    key = ClipKey.for_source(ArraySource(frames), SMALL)
    assert key == ClipKey.for_source(ArraySource(frames.copy()), SMALL)
    changed = frames.copy()
    changed[0, 0, 0, 0] += 0.25
    others = [ClipKey.for_source(ArraySource(changed), SMALL),
              ClipKey.for_source(ArraySource(frames[:7]), SMALL),
              ClipKey.for_source(ArraySource(frames[:, :40]), SMALL),
              ClipKey.for_source(ArraySource(frames), SMALL.replace(analysis_size=96)),
              ClipKey.for_source(ArraySource(frames), SMALL.replace(method="neural"))]
    digests = {key.digest()} | {k.digest() for k in others}
    assert len(digests) == 1 + len(others)
    # render-only settings share the analysis
    assert ClipKey.for_source(ArraySource(frames), SMALL.replace(strength=0.5, local_refinement=False)) == key


def test_hit_after_miss_reads_nothing_new(frames, tmp_path):
    cache = AnalysisCache(tmp_path)
    first = CountingSource(frames)
    analysis, path = load_or_analyze(first, SMALL, cache=cache)
    assert path.exists() and first.reads >= len(frames)
    second = CountingSource(frames)
    key = ClipKey.for_source(second, SMALL)
    reads_for_key = second.reads
    again, path2 = load_or_analyze(second, SMALL, cache=cache, key=key)
    assert path2 == path and second.reads == reads_for_key
    assert np.array_equal(again.atlas_frame(3), analysis.atlas_frame(3))


def test_force_recomputes_and_corrupt_or_old_entries_recompute(frames, tmp_path):
    cache = AnalysisCache(tmp_path)
    _, path = load_or_analyze(ArraySource(frames), SMALL, cache=cache)
    stamp = path.stat().st_mtime_ns
    time.sleep(0.01)
    load_or_analyze(ArraySource(frames), SMALL, cache=cache, force=True)
    assert path.stat().st_mtime_ns != stamp
    path.write_bytes(b"garbage")
    analysis, _ = load_or_analyze(ArraySource(frames), SMALL, cache=cache)
    assert analysis.frame_count == len(frames) and path.stat().st_size > 100
    key = ClipKey.for_source(ArraySource(frames), SMALL)
    arrays = dict(np.load(path))
    arrays["version"] = np.array(-1)
    np.savez(path, **arrays)
    assert cache.load(key) is None and not path.exists()


def test_cancelled_analysis_leaves_no_entry(frames, tmp_path):
    cache = AnalysisCache(tmp_path)
    with pytest.raises(Cancelled):
        load_or_analyze(ArraySource(frames), SMALL, cache=cache, cancel=lambda: True)
    assert not [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")]


def test_unwritable_cache_is_a_clear_error(frames, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    from deflicker.errors import VideoIOError

    with pytest.raises(VideoIOError, match="cache"):
        load_or_analyze(ArraySource(frames), SMALL, cache=AnalysisCache(blocker / "sub"))


_RACE = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from deflicker.cache import AnalysisCache, load_or_analyze
from deflicker.settings import Settings
from deflicker.source import ArraySource
from tests._clips import flicker_clip
frames = flicker_clip(n=8)[1]
analysis, path = load_or_analyze(ArraySource(frames), Settings(analysis_size=64), cache=AnalysisCache({cache!r}))
print(path, float(analysis.atlas_frame(4).sum()))
"""


def test_two_processes_racing_on_one_entry(tmp_path):
    root = str(Path(__file__).resolve().parents[1])
    code = _RACE.format(root=root, cache=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    lines = {o[0].strip() for o in outs}
    assert len(lines) == 1, lines  # same entry, same content
    entries = [p for p in (tmp_path / "cache").iterdir() if p.suffix == ".npz"]
    assert len(entries) == 1
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]


def test_analyze_cli_writes_the_cache_and_reports_it(frames, tmp_path, capsys):
    clip = tmp_path / "clip.mkv"
    write_clip(clip, frames, fps=24.0, bit_depth=16, codec="ffv1")
    cache = tmp_path / "cache"
    assert main(["analyze", str(clip), "--analysis-size", "64", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    entries = list(cache.glob("*.npz"))
    assert len(entries) == 1 and str(entries[0]) in out
    assert main(["analyze", str(tmp_path / "missing.mkv")]) == 3


def _default_sigint() -> None:
    """In the child: Ctrl-C's default action, even under a shell that started the suite in the
    background (those ignore SIGINT, the child inherits that and Python then keeps it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_analyze_ctrl_c_leaves_no_partial_entry(tmp_path):
    _, noisy = flicker_clip(n=200, h=96, w=128)
    clip = tmp_path / "long.mkv"
    write_clip(clip, noisy, fps=24.0, bit_depth=8, codec="ffv1")
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "deflicker", "analyze", str(clip), "--analysis-size", "96",
                             "--cache-dir", str(cache)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=_default_sigint)
    deadline = time.time() + 120
    while time.time() < deadline and not (cache.exists() and any(cache.glob("*.lock"))):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not [p for p in cache.iterdir() if not p.name.endswith(".lock")]
