"""Settings as its two parts (what changes the analysis, what does not) and the analysis's
identity in the cache key: its settings and the tuning constants the analysis reads."""
from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from types import ModuleType

import numpy as np
import pytest

from deflicker.method import tuning
from deflicker.method.clip_key import ClipKey
from deflicker.engine import Engine
from deflicker.errors import InvalidSettingsError
from deflicker.settings import ANALYSIS_FIELDS, RENDER_FIELDS, AnalysisSettings, RenderSettings, Settings
from deflicker.io.source import ArraySource
from tests._clips import flicker_clip

#: Module constants of the analysis modules that are no tuning: the entry format (a key field of
#: its own) and a name. Every other plain constant there must be in tuning.ANALYSIS_CONSTANTS.
NOT_TUNING = {"deflicker.method.analysis": {"FORMAT_VERSION"}, "deflicker.method.atlas.fast": {"OBJECT_PREFIX"}}


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return flicker_clip(n=6, h=32, w=40, seed=3)[1]


def test_settings_is_its_analysis_and_render_parts() -> None:
    settings = Settings(method="neural", strength=0.25, analysis_size=128, keep_slow=12)
    assert set(ANALYSIS_FIELDS) | set(RENDER_FIELDS) == {f.name for f in dataclasses.fields(Settings)}
    assert not set(ANALYSIS_FIELDS) & set(RENDER_FIELDS)
    assert type(settings.analysis) is AnalysisSettings and type(settings.render) is RenderSettings
    assert settings.analysis == AnalysisSettings(method="neural", analysis_size=128)
    assert settings.render == RenderSettings(strength=0.25, keep_slow=12)
    parts = {**{n: getattr(settings.analysis, n) for n in ANALYSIS_FIELDS},
             **{n: getattr(settings.render, n) for n in RENDER_FIELDS}}
    assert Settings(**parts) == settings
    for bad in ({"analysis_size": 32}, {"method": "slow"}, {"strength": 2.0}, {"keep_slow": 5000}):
        with pytest.raises(InvalidSettingsError):
            Settings(**bad)  # type: ignore[arg-type]
    assert settings.analysis_changes(settings.replace(strength=1.0, device="cpu")) == []
    assert settings.analysis_changes(settings.replace(method="fast", analysis_size=64)) == ["method", "analysis_size"]


def test_a_session_renders_other_render_settings_but_refuses_other_analysis_settings(frames) -> None:
    session = Engine(Settings(analysis_size=64)).open(ArraySource(frames))
    session.render(0, session.settings.replace(strength=0.5, local_refinement=False))
    with pytest.raises(InvalidSettingsError, match="analysis_size change the analysis"):
        session.render(0, session.settings.replace(analysis_size=96))


def _defined_constants(module: ModuleType) -> set[str]:
    """The UPPER_CASE names a module assigns at its top level (not those it imports)."""
    tree = ast.parse(inspect.getsource(module))
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()}
    return names


def test_every_listed_tuning_constant_exists_and_every_analysis_constant_is_listed() -> None:
    groups = {**tuning.ANALYSIS_CONSTANTS, **tuning.NEURAL_CONSTANTS}
    for module_name, names in groups.values():
        module = importlib.import_module(module_name)
        assert len(set(names)) == len(names)
        for name in names:
            assert isinstance(getattr(module, name), (int, float, str)), (module_name, name)
        plain = {k for k in _defined_constants(module) if isinstance(getattr(module, k), (int, float, str))}
        assert plain - set(names) - NOT_TUNING.get(module_name, set()) == set(), module_name
    fast, neural = tuning.analysis_constants("fast"), tuning.analysis_constants("neural")
    assert set(fast) < set(neural) and "neural_config.rgb_weight" in neural


@pytest.mark.parametrize("group,name", [("atlas", "MAX_CANVAS"), ("flow", "LOCAL_SCALE"), ("repeats", "REPEAT_NOISE"),
                                        ("static", "MIN_CONSTANT_FRAMES")])
def test_a_tuning_constant_changes_the_cache_key(frames, monkeypatch, group: str, name: str) -> None:
    settings = Settings(analysis_size=64)
    key = ClipKey.for_source(ArraySource(frames), settings)
    module = importlib.import_module(tuning.ANALYSIS_CONSTANTS[group][0])
    monkeypatch.setattr(module, name, getattr(module, name) * 2)
    changed = ClipKey.for_source(ArraySource(frames), settings)
    assert changed.settings != key.settings and changed.digest() != key.digest()
    assert dataclasses.replace(changed, settings=key.settings) == key  # only the settings part moved
    monkeypatch.undo()
    assert ClipKey.for_source(ArraySource(frames), settings) == key


def test_render_settings_leave_the_cache_key_alone(frames) -> None:
    settings = Settings(analysis_size=64)
    key = ClipKey.for_source(ArraySource(frames), settings)
    for change in ({"strength": 0.3}, {"local_refinement": False}, {"keep_slow": 0}, {"device": "cpu"},
                   {"refine": dataclasses.replace(settings.refine, window=1)}):
        assert ClipKey.for_source(ArraySource(frames), settings.replace(**change)) == key, change
    assert tuning.analysis_signature(settings) == tuning.analysis_signature(settings.analysis)
