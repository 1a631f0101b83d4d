"""The Nuke helper (installers/nuke/) against an in-memory ``nuke`` module (tests/_fake_nuke.py).

Checks the node class name against the plugin's own identity (deflicker.server.plugin_spec), mypy, the
menu, Reanalyze, and the pre-analysis of Read clips (a movie and a ``####`` sequence with an
offset range) into the shared cache, from the interface and as ``nuke -t`` for farm renders.
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from _clips import flicker_clip
from _mypy import mypy_errors
from _fake_nuke import FakeNuke, Knob

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "installers" / "nuke"), str(ROOT / "installers" / "common"), str(ROOT / "installers")]


@pytest.fixture
def nuke(monkeypatch):
    """(fake state, its module, the helper module bound to it)."""
    state = FakeNuke()
    mod = state.module()
    monkeypatch.setitem(sys.modules, "nuke", mod)
    helper = importlib.import_module("deflicker_nuke")
    monkeypatch.setattr(helper, "nuke", mod)
    state.known.add(helper.NODE_CLASS)
    return state, mod, helper


def test_node_class_and_analysis_knobs_are_the_plugins(nuke):
    from deflicker.server import plugin_spec

    _, _, helper = nuke
    assert helper.NODE_CLASS == f"OFX{plugin_spec.PLUGIN_IDENTIFIER}_v{plugin_spec.VERSION[0]}"
    assert helper.ANALYSIS_KNOBS == plugin_spec.SIGNATURE_FIELDS  # the knobs that change the analysis


def test_helper_is_mypy_clean(tmp_path):
    assert mypy_errors("nuke", cache_dir=tmp_path) == ""


def test_menu_creates_the_node_and_reanalyze_presses_only_deflicker_nodes(nuke):
    state, mod, helper = nuke
    exec(compile((ROOT / "installers" / "nuke" / "menu.py").read_text(), "menu.py", "exec"), {})
    entries = state.menus["Nodes"].items["Deflicker"].items
    assert set(entries) == {"Deflicker", "Reanalyze selected", "Pre-analyse selected Reads"}
    read = state.add("Read", "Read1")
    read.setSelected(True)
    node = entries["Deflicker"]()
    assert node.Class() == helper.NODE_CLASS and node.input(0) is read  # created after the selection
    node.knobs["reanalyze"] = Knob(node, "reanalyze")  # the plugin's push button
    read.setSelected(True)
    node.setSelected(True)
    assert entries["Reanalyze selected"]() == 1 and node.pressed == ["reanalyze"]
    for n in state.nodes:
        n.setSelected(False)
    assert helper.reanalyze() == 0 and state.messages[-1].startswith("Deflicker: select")


def test_missing_plugin_gives_a_message_not_a_traceback(nuke):
    state, _, helper = nuke
    state.known.discard(helper.NODE_CLASS)
    assert helper.create_node() is None
    assert state.messages == [f"Deflicker: Nuke has no {helper.NODE_CLASS}. Install the plugin (install.py install) "
                              "and make sure its folder is on OFX_PLUGIN_PATH, then restart Nuke."]


# ------------------------------------------------------------------ pre-analysis on real clips


@pytest.fixture
def clips(tmp_path):
    """A 10-frame movie and a 10-frame sequence numbered from 1001 (64x48)."""
    from deflicker.io.files import write_clip

    _, a = flicker_clip(10, 48, 64, seed=3)
    _, b = flicker_clip(10, 48, 64, seed=4)
    movie = write_clip(tmp_path / "shot.mkv", list(a), fps=24.0)
    (tmp_path / "seq").mkdir()
    write_clip(tmp_path / "seq" / "plate.%04d.png", list(b), fps=24.0, numbers=range(1001, 1011))
    return str(movie), str(tmp_path / "seq" / "plate.####.png")


def script(state: FakeNuke, helper, movie: str, sequence: str):
    """Read1 (movie, frames 1-10) -> Deflicker; Read2 (sequence, frames 1003-1010) -> Grade -> Deflicker;
    Read3 (movie) feeds nothing."""
    knobs = {"method": "fast", "analysis_size": 64.0, "reanalyze": None}
    r1 = state.add("Read", "Read1", {"file": movie, "first": 1, "last": 10, "origfirst": 1})
    r2 = state.add("Read", "Read2", {"file": sequence, "first": 1003, "last": 1010, "origfirst": 1001})
    r3 = state.add("Read", "Read3", {"file": movie, "first": 1, "last": 10, "origfirst": 1})
    state.add(helper.NODE_CLASS, "Deflicker1", knobs, [r1])
    grade = state.add("Grade", "Grade1", {}, [r2])
    state.add(helper.NODE_CLASS, "Deflicker2", knobs, [grade])
    return r1, r2, r3


def cached(path: str, start: int, end: int) -> bool:
    from deflicker import Engine, Settings

    engine = Engine(Settings(analysis_size=64))
    with engine.open(path.replace("####", "%04d"), frame_range=(start, end)) as session:
        return session.in_cache()


def test_preanalyse_selected_reads_with_the_nodes_settings(nuke, clips, isolated_cache):
    state, mod, helper = nuke
    movie, sequence = clips
    r1, r2, _ = script(state, helper, movie, sequence)
    clip = helper.read_clip(r2)
    assert (clip.path, clip.start, clip.end, clip.settings) == (
        sequence.replace("####", "%04d"), 2, 10, {"method": "fast", "analysis_size": 64})
    r1.setSelected(True)
    r2.setSelected(True)
    mod.GUI = True
    assert helper.preanalyse() == ["Read1: analysed", "Read2: analysed"]
    assert cached(movie, 0, 10) and cached(sequence, 2, 10) and not cached(sequence, 0, 10)
    assert [t.values[-1] for t in state.tasks] == [100, 100] and state.messages[-1] == "Read1: analysed\nRead2: analysed"
    assert helper.preanalyse([r2]) == ["Read2: already analysed"]


def test_cancel_from_the_progress_bar_stores_nothing(nuke, clips, isolated_cache):
    state, mod, helper = nuke
    r1, _, _ = script(state, helper, *clips)
    mod.GUI = True
    state.cancel_after = 2
    lines = helper.preanalyse([r1])
    assert lines == ["Read1: failed: cancelled"], lines
    assert not list(isolated_cache.rglob("*.npz"))


def test_farm_preanalysis_of_a_script(nuke, clips, tmp_path, isolated_cache, capsys):
    state, mod, helper = nuke
    movie, sequence = clips
    nk = tmp_path / "comp.json"
    knobs = {"method": "fast", "analysis_size": 64}
    nk.write_text(json.dumps([
        {"class": "Read", "name": "Read1", "knobs": {"file": sequence, "first": 1001, "last": 1010, "origfirst": 1001}},
        {"class": "Read", "name": "Read9", "knobs": {"file": movie, "first": 1, "last": 10, "origfirst": 1}},
        {"class": helper.NODE_CLASS, "name": "Deflicker1", "knobs": knobs, "inputs": ["Read1"]},
    ]))
    assert helper.main([str(nk)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "Read1: analysed"
    assert cached(sequence, 0, 10) and not cached(movie, 0, 10)  # Read9 feeds no Deflicker node
    assert helper.main([]) == 2


def test_farm_analysis_through_the_plugin_samples_each_deflicker_node(nuke, tmp_path, capsys):
    state, mod, helper = nuke
    rendered = []
    state.render = lambda node, frame: rendered.append((node.name(), frame)) or node.name() != "Deflicker2"
    nk = tmp_path / "comp.json"
    nk.write_text(json.dumps([
        {"class": "Read", "name": "Read1", "knobs": {"file": "/plates/a.####.exr", "first": 1001, "last": 1100}},
        {"class": helper.NODE_CLASS, "name": "Deflicker1", "inputs": ["Read1"]},
        {"class": "Read", "name": "Read2", "knobs": {"file": "/plates/b.mov", "first": 1, "last": 50}},
        {"class": helper.NODE_CLASS, "name": "Deflicker2", "inputs": ["Read2"]},
    ]))
    assert helper.main([str(nk), "--via-plugin"]) == 1  # Deflicker2's render failed
    assert rendered == [("Deflicker1", 1001), ("Deflicker2", 1)]
    assert capsys.readouterr().out.splitlines() == ["Deflicker1: analysed by the plugin",
                                                    "Deflicker2: failed (see the node)"]
