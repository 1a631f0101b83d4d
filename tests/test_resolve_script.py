"""The Resolve script (installers/resolve/deflicker_resolve.py) against an in-memory Resolve.

Resolve cannot run here, so tests/_fake_resolve.py stands in for its scripting API; the first
test holds the stand-in to the fusionscript-stubs package (same classes, methods and parameter
names), the second type-checks the script against those stubs with mypy. The rest run the
script's commands on tiny real clips (64x48, 8 frames) through the real engine and cache.
"""
from __future__ import annotations

import ast
import inspect
import sys
import sysconfig
from pathlib import Path

import pytest

from _clips import flicker_clip
from _mypy import mypy_errors
from _fake_resolve import FAKES, FakeMediaPoolItem, FakeProject, FakeResolve, FakeTimeline, FakeTimelineItem

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "installers" / "resolve"), str(ROOT / "installers" / "common")]
import deflicker_resolve  # noqa: E402

SIZE = ["--analysis-size", "64"]


def stub_methods() -> dict[str, dict[str, list[list[str]]]]:
    """class -> method -> parameter-name lists (one per overload) from fusionscript-stubs."""
    stubs = Path(sysconfig.get_paths()["purelib"]) / "fusionscript-stubs"
    if not stubs.is_dir():
        pytest.fail("fusionscript-stubs is not installed (pip install -e '.[dev]')")
    tree = ast.parse((stubs / "fusionscript.pyi").read_text())
    out: dict[str, dict[str, list[list[str]]]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            methods = out.setdefault(node.name, {})
            for fn in node.body:
                if isinstance(fn, ast.FunctionDef):
                    methods.setdefault(fn.name, []).append([a.arg for a in fn.args.args[1:]])
    return out


def test_fake_follows_the_stubs():
    stubs = stub_methods()
    for fake in FAKES:
        assert fake.STUB in stubs, f"{fake.__name__}: fusionscript has no class {fake.STUB}"
        for name, fn in inspect.getmembers(fake, inspect.isfunction):
            if name.startswith("_"):
                continue
            assert name in stubs[fake.STUB], f"{fake.STUB}.{name} is not in the stubs"
            params = list(inspect.signature(fn).parameters)[1:]
            assert params in stubs[fake.STUB][name], f"{fake.STUB}.{name}{params} vs stubs {stubs[fake.STUB][name]}"


def test_script_is_mypy_clean_against_the_stubs(tmp_path):
    assert mypy_errors("resolve", cache_dir=tmp_path) == ""


# ------------------------------------------------------------------ a timeline on real clips


def write_clip(path: Path, seed: int, n: int = 8) -> str:
    from deflicker.io.files import write_clip as write

    _, frames = flicker_clip(n, 48, 64, seed=seed)
    return str(write(path, list(frames), fps=24.0))


@pytest.fixture
def timeline(tmp_path):
    """V1: a Deflicker clip, a plain clip, a Deflicker title (no media); V2: a Deflicker sub-range."""
    a, b = write_clip(tmp_path / "a.mkv", 1), write_clip(tmp_path / "b.mkv", 2)
    items = {
        "a": FakeTimelineItem("a", FakeMediaPoolItem(a, 8), 0, 8, nodes=[["Color Corrector"], ["Atlas Deflicker"]]),
        "plain": FakeTimelineItem("plain", FakeMediaPoolItem(b, 8), 0, 8, nodes=[["Color Corrector"]]),
        "title": FakeTimelineItem("title", None, 0, 8, nodes=[["Atlas Deflicker"]]),
        "b": FakeTimelineItem("b", FakeMediaPoolItem(b, 8), 2, 8, nodes=[["Atlas Deflicker", "Blur"]]),
        # Resolve Studio's own ResolveFX Deflicker: not ours, never analysed or counted
        "builtin": FakeTimelineItem("builtin", FakeMediaPoolItem(a, 8), 0, 8, nodes=[["Deflicker"]]),
    }
    return FakeTimeline("Edit 1", [[items["a"], items["plain"], items["title"]], [items["b"], items["builtin"]]]), items


def cached_keys(timeline: FakeTimeline) -> list[bool]:
    """For each Deflicker item: is its analysis (64 px) in the cache, as the plugin would look it up?"""
    from deflicker import Engine, Settings

    engine = Engine(Settings(analysis_size=64))
    out = []
    for clip in deflicker_resolve.deflicker_clips(timeline):
        with engine.open(clip.path, frame_range=(clip.start, clip.end)) as session:
            out.append(session.in_cache())
    return out


def run(resolve: FakeResolve, *argv: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = deflicker_resolve.main(list(argv), {"resolve": resolve}, report=lines.append)
    return code, lines


def test_lists_the_items_that_carry_the_effect(timeline):
    tl, items = timeline
    clips = deflicker_resolve.deflicker_clips(tl)
    assert [(c.name, c.track, c.start, c.end) for c in clips] == [("a", 1, 0, 8), ("b", 2, 2, 8)]
    code, lines = run(FakeResolve(FakeProject(tl)), "list")
    assert code == 0 and lines[-1] == "2 Deflicker clip(s) on Edit 1", lines
    inclusive = FakeTimelineItem("c", items["a"].media, 1, 6, nodes=[["Atlas Deflicker"]], duration=6)
    assert deflicker_resolve.as_clip(inclusive, 1).end == 7  # an inclusive end still covers every frame shown


def test_analyse_fills_the_cache_once_and_render_only_reads_it(timeline, isolated_cache):
    tl, _ = timeline
    assert cached_keys(tl) == [False, False]
    code, lines = run(FakeResolve(FakeProject(tl)), "analyse", *SIZE)
    assert code == 0, lines
    assert cached_keys(tl) == [True, True]
    entries = {p: p.stat().st_mtime_ns for p in isolated_cache.rglob("*.npz")}
    assert len(entries) == 2 and any("100%" in line for line in lines), lines

    def deliver(t: FakeTimeline) -> str:  # the plugin on the Deliver page: every clip must be cached
        return "" if all(cached_keys(t)) else "Deflicker: clip not analysed"

    project = FakeProject(tl, deliver=deliver)
    project.SetRenderSettings({"TargetDir": "/renders"})
    code, lines = run(FakeResolve(project), "render", *SIZE)
    assert code == 0, lines
    assert sum("already analysed" in line for line in lines) == 2, lines
    assert {p: p.stat().st_mtime_ns for p in isolated_cache.rglob("*.npz")} == entries, "render re-analysed"
    assert [line for line in lines if "render " in line][-1] == "render job job-1 complete"
    assert [line.strip() for line in lines if line.strip().startswith("render ") and "%" in line] == [
        "render 25% Rendering", "render 50% Rendering", "render 75% Rendering", "render 100% Complete"]


def test_reanalyze_current_redoes_only_the_clip_under_the_playhead(timeline, isolated_cache):
    tl, items = timeline
    assert run(FakeResolve(FakeProject(tl)), "analyse", *SIZE)[0] == 0
    before = {p.name: p.stat().st_mtime_ns for p in isolated_cache.rglob("*.npz")}
    tl.playhead = items["b"]
    code, lines = run(FakeResolve(FakeProject(tl)), "reanalyze-current", *SIZE)
    assert code == 0, lines
    after = {p.name: p.stat().st_mtime_ns for p in isolated_cache.rglob("*.npz")}
    assert after.keys() == before.keys() and sum(after[k] != before[k] for k in after) == 1, (before, after)
    assert any(line.startswith("b: analysed") for line in lines), lines

    for other in ("plain", "builtin"):  # no effect, or Resolve's own Deflicker
        tl.playhead = items[other]
        code, lines = run(FakeResolve(FakeProject(tl)), "reanalyze-current", *SIZE)
        assert code == 1 and lines == ["Deflicker: the clip under the playhead has no Deflicker effect"]


@pytest.mark.parametrize("setup,message", [
    (lambda tl: FakeProject(tl), "Resolve refused to add a render job"),  # no render location set
    (lambda tl: FakeProject(None), "the project has no current timeline"),
], ids=["no-render-location", "no-timeline"])
def test_refusals_are_one_line(timeline, setup, message):
    tl, _ = timeline
    tl.tracks[1].clear()
    tl.tracks[0].pop(0)  # no Deflicker clip with media left: nothing to analyse
    code, lines = run(FakeResolve(setup(tl)), "render", *SIZE)
    assert code == 1 and len(lines) >= 1 and lines[-1].startswith(f"Deflicker: {message}"), lines


def test_a_failed_render_job_reports_resolves_error(timeline):
    tl, items = timeline
    tl.tracks[:] = [[items["plain"]]]  # no Deflicker clip: render still runs
    project = FakeProject(tl, deliver=lambda t: "disk full")
    project.SetRenderSettings({"TargetDir": "/renders"})
    code, lines = run(FakeResolve(project), "render")
    assert code == 1 and lines[0] == "no clip of Edit 1 has the Deflicker effect on a Color-page node", lines
    assert lines[-1] == "Deflicker: render job job-1 ended Failed: disk full", lines


def test_unreadable_media_fails_that_clip_only(timeline, tmp_path, isolated_cache):
    tl, items = timeline
    items["a"].media = FakeMediaPoolItem(str(tmp_path / "gone.mkv"), 8)
    code, lines = run(FakeResolve(FakeProject(tl)), "analyse", *SIZE)
    assert code == 1 and any(line.startswith("a: failed: ") for line in lines), lines
    assert any(line.startswith("b: analysed") for line in lines), lines
    assert len(list(isolated_cache.rglob("*.npz"))) == 1


def test_a_job_resolve_never_starts_is_a_one_line_error():
    project = FakeProject(FakeTimeline("Edit 1", []))
    project.SetRenderSettings({"TargetDir": "/renders"})
    project.StartRendering = lambda *args: True  # accepted, but never taken up: stays "Ready"
    lines: list[str] = []
    with pytest.raises(deflicker_resolve.ResolveScriptError, match="did not start within 0.2 s .status Ready."):
        deflicker_resolve.render(project, lines.append, poll_s=0.05, start_timeout_s=0.2)
    assert lines == ["render job job-1 started"]


def test_effect_label_is_the_plugins():
    from deflicker.server import plugin_spec

    assert deflicker_resolve.EFFECT_LABEL == plugin_spec.LABEL
