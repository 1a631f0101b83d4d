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

from deflicker.method.clip_key import ClipKey
from deflicker.method.segment_analysis import load_analysis, load_or_analyze
from deflicker.store.cache import AnalysisCache
from deflicker.cli.main import main
from deflicker.engine import Engine
from deflicker.errors import Cancelled
from deflicker.io.files import write_clip
from deflicker.settings import Settings
from deflicker.io.source import ArraySource
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
    again, path2 = load_or_analyze(second, SMALL, cache=cache, name=key.digest())
    assert path2 == path and second.reads == reads_for_key
    assert np.array_equal(again.atlas_frame(3), analysis.atlas_frame(3))


def test_force_recomputes_and_corrupt_or_old_entries_recompute(frames, tmp_path):
    cache = AnalysisCache(tmp_path)
    path = load_or_analyze(ArraySource(frames), SMALL, cache=cache).path
    stamp = path.stat().st_mtime_ns
    time.sleep(0.01)
    load_or_analyze(ArraySource(frames), SMALL, cache=cache, force=True)
    assert path.stat().st_mtime_ns != stamp
    path.write_bytes(b"garbage")
    analysis = load_or_analyze(ArraySource(frames), SMALL, cache=cache).analysis
    assert analysis.frame_count == len(frames) and path.stat().st_size > 100
    key = ClipKey.for_source(ArraySource(frames), SMALL)
    arrays = dict(np.load(path))
    arrays["version"] = np.array(-1)
    _sign(arrays)
    np.savez(path, **arrays)
    assert load_analysis(cache, key.digest(), ArraySource(frames), SMALL) is None and path.exists()  # refused, left for the next store to replace
    load_or_analyze(ArraySource(frames), SMALL, cache=cache)
    assert load_analysis(cache, key.digest(), ArraySource(frames), SMALL) is not None


def test_cancelled_analysis_leaves_no_entry(frames, tmp_path):
    cache = AnalysisCache(tmp_path)
    with pytest.raises(Cancelled):
        load_or_analyze(ArraySource(frames), SMALL, cache=cache, cancel=lambda: True)
    assert not [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")]


def test_unusable_cache_costs_a_warning_not_the_analysis(frames, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    found = load_or_analyze(ArraySource(frames), SMALL, cache=AnalysisCache(blocker / "sub"))
    assert found.analysis.frame_count == len(frames)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("cannot write the analysis cache" in m for m in warned), warned
    assert all("\n" not in m for m in warned)


_RACE = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from deflicker.store.cache import AnalysisCache
from deflicker.method.segment_analysis import load_or_analyze
from deflicker.settings import Settings
from deflicker.io.source import ArraySource
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


# ---------------------------------------------------------------- the entry is checked before use

def _unsampled_frame(n: int) -> int:
    """A frame the cache key's fingerprint does not sample."""
    from deflicker.method.clip_key import FINGERPRINT_FRAMES

    picks = set(np.linspace(0, n - 1, min(FINGERPRINT_FRAMES, n)).round().astype(int).tolist())
    return min(set(range(n)) - picks)


@pytest.fixture(scope="module")
def twins():
    """Two 12-frame clips the cache key cannot tell apart: frame k of the second is half as bright."""
    frames = flicker_clip(n=12)[1]
    k = _unsampled_frame(len(frames))
    other = frames.copy()
    other[k] *= 0.5
    return frames, other, k


def _fresh_render(frames, t, tmp_path):
    """Frame t rendered by an engine with a cache of its own (the analysis made from these frames)."""
    return Engine(SMALL, cache_dir=tmp_path / "fresh").open(ArraySource(frames)).render(t)


def test_clips_the_key_cannot_tell_apart_never_share_an_analysis(twins, tmp_path, caplog):
    frames, other, k = twins
    assert ClipKey.for_source(ArraySource(frames), SMALL) == ClipKey.for_source(ArraySource(other), SMALL)
    shared = tmp_path / "shared"
    Engine(SMALL, cache_dir=shared).open(ArraySource(frames)).analyze()
    session = Engine(SMALL, cache_dir=shared).open(ArraySource(other))
    out = session.render(k)
    assert any("analysing the clip again" in r.getMessage() for r in caplog.records)
    assert np.array_equal(out, _fresh_render(other, k, tmp_path))
    # the shared entry now holds the second clip's analysis, and the first clip gets its own back
    assert np.array_equal(Engine(SMALL, cache_dir=shared).open(ArraySource(frames)).render(k),
                          _fresh_render(frames, k, tmp_path / "first"))


def test_a_run_never_mixes_two_analyses(twins, tmp_path):
    """``deflicker run`` on a clip whose key another clip's entry holds: every frame of the output
    as from a cache of its own (the render restarts once the entry is found to be the other's)."""
    from deflicker.engine import process
    from deflicker.io.files import open_clip

    frames, other, k = twins
    clips = {}
    for name, clip in (("first", frames), ("second", other)):
        clips[name] = tmp_path / f"{name}.mkv"
        write_clip(clips[name], clip, fps=24.0, bit_depth=16, codec="ffv1")
    shared = tmp_path / "shared"
    process(Engine(SMALL, cache_dir=shared), clips["first"], tmp_path / "first-out.mkv")
    process(Engine(SMALL, cache_dir=shared), clips["second"], tmp_path / "shared-out.mkv")
    process(Engine(SMALL, cache_dir=tmp_path / "own"), clips["second"], tmp_path / "own-out.mkv")
    with open_clip(tmp_path / "shared-out.mkv") as got, open_clip(tmp_path / "own-out.mkv") as want:
        assert len(got) == len(want) == len(other)
        for t in range(len(got)):
            assert np.array_equal(got[t], want[t]), t


def _rewrite(path: Path, edit) -> None:
    """Load an entry's arrays, let ``edit`` change them in place, save them back."""
    arrays = dict(np.load(path))
    edit(arrays)
    np.savez(path, **arrays)


def _stored(frames, cache_dir: Path, settings: Settings = SMALL) -> Path:
    """The cache entry of ``frames``, analysed through the engine."""
    session = Engine(settings, cache_dir=cache_dir).open(ArraySource(frames))
    session.analyze()
    assert session.cache_path is not None and session.cache_path.exists()
    return session.cache_path


def _sign(arrays: dict) -> None:
    """What a careful forger does: the checksum recomputed over the edited arrays."""
    from deflicker.method.analysis_entry import checksum

    arrays["entry.checksum"] = np.array(checksum(arrays))


def _darken(arrays: dict) -> None:
    arrays["shot0.texture"] = arrays["shot0.texture"] * np.float32(0.5)


@pytest.mark.parametrize("forgery", ["edited", "other-clip", "other-clip-signed"])
def test_an_entry_edited_by_hand_is_never_used(twins, tmp_path, forgery):
    """An entry edited (its checksum no longer matches), or another clip's entry put in its
    place (its key, or with a recomputed checksum its frame digests, give it away), is replaced
    by the clip's own analysis. (Arrays edited with the checksum recomputed and this clip's
    digests kept are beyond any check: the cache folder is writable only by trusted users.)"""
    frames, other, k = twins
    cache = tmp_path / "cache"
    key = ClipKey.for_source(ArraySource(frames), SMALL)
    path = AnalysisCache(cache).path_for(key.digest())
    if forgery == "edited":
        _stored(frames, cache)
        _rewrite(path, _darken)
    else:  # the entry of a clip with other frames, moved to this clip's name (and key)
        other_entry = _stored(other, tmp_path / "twin")

        def rekey(arrays: dict) -> None:
            arrays["entry.key"] = np.array(key.digest())
            if forgery.endswith("signed"):
                _sign(arrays)

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(other_entry.read_bytes())
        _rewrite(path, rekey)
    forged = path.read_bytes()
    session = Engine(SMALL, cache_dir=cache).open(ArraySource(frames))
    out = session.render(k)
    assert np.array_equal(out, _fresh_render(frames, k, tmp_path))
    assert path.read_bytes() != forged  # replaced by the clip's own analysis


def test_bad_index_is_refused_and_replaced(frames, tmp_path, caplog):
    path = _stored(frames, tmp_path)

    def bad_index(arrays: dict) -> None:
        arrays["canonical"] = arrays["canonical"].copy()
        arrays["canonical"][3] = 10_000
        _sign(arrays)

    _rewrite(path, bad_index)
    out = Engine(SMALL, cache_dir=tmp_path).open(ArraySource(frames)).render(3)
    assert np.isfinite(out).all()
    assert any("repeat indices" in r.getMessage() for r in caplog.records)
    assert int(np.load(path)["canonical"][3]) == 3  # the bad entry was replaced, not kept


@pytest.mark.parametrize("member, value", [
    ("scale", np.array(np.nan)),
    ("shots", np.array([0, 9])),
    ("shot0.nodes", np.zeros((2, 3, 3, 2))),
    ("shot0.colour", -np.ones((8, 2, 3), np.float32)),
    ("local_levels", np.array([7.0])),
    ("content.frames", np.zeros((7, 16), np.uint8)),
    ("static", np.zeros((1, 3, 3), bool)),
    ("frame_means", np.full((8, 3), np.inf)),
])
def test_out_of_range_members_are_refused_and_replaced(frames, tmp_path, member, value):
    path = _stored(frames, tmp_path)
    _rewrite(path, lambda a: (a.__setitem__(member, value), _sign(a)))
    _stored(frames, tmp_path)
    stored = np.load(path)[member]
    assert stored.shape != value.shape or not np.array_equal(stored, value, equal_nan=True)


def test_a_huge_member_is_never_inflated(frames, tmp_path):
    """A member that inflates past what such a clip's entry holds (a zip bomb) is refused from
    the zip directory, before a byte of it is read."""
    import io
    import tracemalloc
    import zipfile

    path = _stored(frames, tmp_path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (40_000_000,)})
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf, \
            zf.open("shot0.extra.npy", "w", force_zip64=True) as member:
        member.write(header.getvalue())
        chunk = bytes(1 << 20)
        for _ in range(160):
            member.write(chunk)
    assert path.stat().st_size < 4 << 20
    tracemalloc.start()
    try:
        _stored(frames, tmp_path)  # analysed again: the analysis of 8 tiny frames needs a few MB
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 48 << 20, peak
    assert "shot0.extra" not in np.load(path).files


# ---------------------------------------------------------------- cancel: lock waits and analysis loops

def test_a_lock_wait_says_what_it_waits_for_and_polls_cancel(frames, tmp_path):
    import fcntl
    import threading

    cache = AnalysisCache(tmp_path)
    key = ClipKey.for_source(ArraySource(frames), SMALL)
    stop = threading.Event()
    labels: list[str] = []
    outcome: list[BaseException] = []

    def analyse() -> None:
        try:
            load_or_analyze(ArraySource(frames), SMALL, cache=cache, name=key.digest(), cancel=stop.is_set,
                            progress=lambda f, label: labels.append(label))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    with open(tmp_path / f"{key.digest()}.lock", "a+b") as held:  # another process analysing this clip
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        waiter = threading.Thread(target=analyse, daemon=True)
        waiter.start()
        deadline = time.time() + 30
        while not labels and time.time() < deadline:
            time.sleep(0.02)
        stop.set()
        waiter.join(timeout=30)
        assert not waiter.is_alive(), "the lock wait ignored cancel"
    assert labels and labels[0] == f"waiting for another process analysing clip {key.digest()}"
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)
    assert not list(tmp_path.glob("*.npz"))


def test_cancel_is_polled_in_every_per_frame_loop_of_the_analysis(tmp_path):
    """Every pass over the frames polls cancel once a frame: the stages' polls, counted by the
    stage last reported, are at least one per frame and pass (the texture stage makes
    GAIN_PASSES + REGISTER_PASSES passes, each with several loops over the frames)."""
    from deflicker.method.analysis import analyze_clip
    from deflicker.method.atlas.fast import GAIN_PASSES, REGISTER_PASSES

    n = 10
    frames = flicker_clip(n=n)[1]
    stage = ["start"]
    polls: dict[str, int] = {}

    def progress(fraction: float, label: str) -> None:
        stage[0] = label.split(" ")[0] if label.startswith(("reading", "flow")) else label

    def cancel() -> bool:
        polls[stage[0]] = polls.get(stage[0], 0) + 1
        return False

    analyze_clip(ArraySource(frames), SMALL, progress, cancel)
    assert polls.get("reading", 0) >= n - 1 and polls.get("flow", 0) >= n - 2
    assert polls.get("atlas: motion", 0) >= 2 * (n - 1)  # the similarity chain and the mesh's flow pairs
    assert polls.get("atlas: texture", 0) >= 2 * n * (GAIN_PASSES + REGISTER_PASSES), polls


def test_the_plugin_status_says_what_a_lock_wait_waits_for(frames, tmp_path):
    import fcntl
    import threading

    from deflicker.server.model_server import ModelServer

    server = ModelServer(cache_dir=tmp_path)
    h, w = frames.shape[1:3]

    def fetch(i: int) -> np.ndarray:
        return frames[i]

    key = server.open_clip("node", {"width": w, "height": h, "channels": 3, "frame_count": len(frames)},
                           {"analysis_size": 64}, fetch)
    stop = threading.Event()
    with open(tmp_path / f"{key}.lock", "a+b") as held:  # another process analysing this clip
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        waiter = threading.Thread(target=lambda: pytest.raises(Cancelled, server.analyze, key, fetch,
                                                               cancel=stop.is_set), daemon=True)
        waiter.start()
        deadline = time.time() + 30
        while not server.status(key).startswith("waiting") and time.time() < deadline:
            time.sleep(0.02)
        assert server.status(key) == f"waiting for another process analysing clip {key}"
        stop.set()
        waiter.join(timeout=30)
        assert not waiter.is_alive()
    assert server.status(key) == "not analysed (cancelled)"


def test_the_store_never_imports_the_method():
    """The cache is a plain store (bytes, names, locks): no module of deflicker.store imports deflicker.method."""
    import ast

    import deflicker.store

    for path in Path(deflicker.store.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.startswith("deflicker.method")], (path.name, names)
