"""The analysis's identity: its settings and the tuning constants that change its results.

:func:`analysis_signature` is the settings part of the analysis cache key
(:class:`deflicker.method.clip_key.ClipKey`): a hash of the :class:`~deflicker.settings.AnalysisSettings`
and of the named constants below, so that a change to one of them makes a new analysis instead
of reading a stale cached one. Only constants the analysis reads (proxies, shot cuts, repeats,
flows, the atlas fit, static regions, local-flicker levels) are listed; the render's (filter,
refinement, slow changes) change no cached result and are not.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from typing import Any

from deflicker.settings import AnalysisSettings

#: The tuning constants of the analysis, by group: (module, names). A group's name, not its
#: module's, enters the key, so moving a module changes no key.
ANALYSIS_CONSTANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "analysis": ("deflicker.method.analysis", ("LOCAL_LOW", "LOCAL_HIGH", "FLAT_FRAME")),
    "repeats": ("deflicker.method.repeats", ("REPEAT_NOISE", "REPEAT_MAX")),
    "flow": ("deflicker.method.flow", ("FINEST_SCALE", "LOCAL_SCALE", "LOCAL_MIN_SIGMA")),
    "geometry": ("deflicker.method.atlas.geometry", ("PAIR_POINTS", "HUBER", "TUKEY")),
    "mesh": ("deflicker.method.atlas.mesh", ("MESH_WINDOW", "MESH_OVERLAP", "ANCHOR")),
    "registration": ("deflicker.method.atlas.registration", ("REGISTER_PRESET", "REGISTER_STIFFNESS")),
    "colour": ("deflicker.method.atlas.colour", ("FLAT_CHANNEL", "COLOUR_PASSES", "COLOUR_TUKEY", "MIN_FREE")),
    "atlas": ("deflicker.method.atlas.fast", ("MAX_CANVAS", "CENSORED_SEEN", "MOTION_OK", "AGREE_LOW", "FLAT",
                                             "GAIN_PASSES", "REGISTER_PASSES", "OBJECT_BETTER")),
    "object": ("deflicker.method.atlas.object_layer", ("MOVING", "MIN_SHARE", "MIN_POINTS", "MAX_CANVAS",
                                                       "REGISTER_PASSES", "REGISTER_PRESET", "COVERED", "TRUST_ERROR")),
    "clipped": ("deflicker.method.correction", ("CLIP_RAMP",)),
    "static": ("deflicker.method.static_regions", ("STATIC_RANGE", "MIN_CONSTANT_FRAMES")),
}
#: ... and, for the neural method only (their modules load torch), the neural atlas's.
NEURAL_CONSTANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "neural_loss": ("deflicker.method.atlas.neural_loss", ("REFERENCE_HALF", "_EPS")),
}


def _neural_config() -> dict[str, Any]:
    """The neural atlas's architecture, sampling and loss weights (its NeuralConfig defaults)."""
    from deflicker.method.atlas.neural import NeuralConfig

    return dataclasses.asdict(NeuralConfig())


def analysis_constants(method: str) -> dict[str, Any]:
    """The current values of the tuning constants an analysis by ``method`` reads, by 'group.NAME'."""
    groups = {**ANALYSIS_CONSTANTS, **(NEURAL_CONSTANTS if method == "neural" else {})}
    values: dict[str, Any] = {}
    for group, (module_name, names) in groups.items():
        module = importlib.import_module(module_name)
        values.update({f"{group}.{name}": getattr(module, name) for name in names})
    if method == "neural":
        values.update({f"neural_config.{k}": v for k, v in _neural_config().items()})
    return values


def analysis_signature(settings: AnalysisSettings) -> str:
    """The settings part of the analysis cache key: a hash of ``settings`` and of the tuning
    constants the analysis reads (16 hex digits)."""
    plain = dataclasses.asdict(settings.analysis)  # of a whole Settings too: its analysis part alone
    plain["analysis_size"] = int(settings.analysis_size)  # the plugin may hand over 256.0
    del plain["segment_frames"]  # which frames a segment's analysis covers is in its entry's name
    plain["constants"] = analysis_constants(settings.method)
    blob = json.dumps(plain, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
