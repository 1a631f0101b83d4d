"""The OFX plugin's identity, parameters and server calls, defined once, from :mod:`deflicker.settings`.

The build generates the plugin's C++ tables from this module (:mod:`deflicker.server.plugin_header`
writes ``build/generated/params_gen.h`` and ``call_fields_gen.h``): the params' names, labels,
defaults and ranges (defaults and ranges are the Settings' own), the plugin's identifier and
version, the clip facts and settings that cross to the server, and the clip signature (the
settings of :class:`~deflicker.settings.AnalysisSettings` the plugin has). It loads no torch or
OpenCV: the build imports it.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from deflicker.settings import (ANALYSIS_FIELDS, ANALYSIS_SIZE_RANGE, KEEP_SLOW_RANGE, METHODS, STRENGTH_RANGE,
                                USER_FIELDS, Settings)
from deflicker.io.source import ClipInfo

#: Identity. Bump the MAJOR version when saved projects can no longer load (params removed or
#: renamed, meaning changed): Nuke names the node class after it. Bump MINOR for compatible
#: changes (new params with defaults, fixes).
PLUGIN_IDENTIFIER = "com.atlasdeflicker.Deflicker"
VERSION = (1, 0)
LABEL = "Atlas Deflicker"  # not "Deflicker": Resolve Studio has a ResolveFX of that name
GROUPING = "Filter"
DESCRIPTION = ("Blind video deflickering: removes brightness and colour flicker using a per-clip atlas, "
               "a neural filter and local refinement.")

#: Param kinds, in the order of the C++ ParamKind enum (plugin/params.h).
KINDS = ("Double", "Int", "Bool", "Choice", "PushButton", "Label", "Hidden")


@dataclass(frozen=True)
class Param:
    """One OFX parameter. Numeric params take ``low``..``high`` as both range and display range
    (Resolve needs both); a Choice's default is the index of its value in ``options``."""

    name: str  # script name (= the Settings field of a setting param)
    label: str
    hint: str
    kind: str  # one of KINDS
    default: float = 0.0
    low: float = 0.0
    high: float = 0.0
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"param {self.name}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")


#: Label and hint of each setting the plugin shows, in USER_FIELDS order. `device` is no param:
#: inside a host the engine picks it ("auto"). Nor is `segment_frames` (not a user field): every
#: instance analyses long media in the default segments, so pre-analyses and renders share entries.
_SETTING_TEXT = {
    "strength": ("Strength", "0 leaves the clip unchanged, 1 removes the flicker fully."),
    "method": ("Method", "fast: quick per-clip atlas fit. neural: slower, sturdier atlas."),
    "local_refinement": ("Local refinement", "Fix flicker that varies across the frame using neighbouring frames."),
    "analysis_size": ("Analysis size", "Long side, in pixels, of the proxy the analysis works at."),
    "keep_slow": ("Keep slow changes",
                  "Frames: changes slower than this (fades, exposure ramps) are kept. 0 = off, -1 = auto (1 s)."),
}
_RANGES = {"strength": STRENGTH_RANGE, "analysis_size": ANALYSIS_SIZE_RANGE, "keep_slow": KEEP_SLOW_RANGE}
_CHOICES = {"method": METHODS}

#: The Settings fields the plugin's params set, in the order it shows them.
PLUGIN_FIELDS = tuple(name for name in USER_FIELDS if name in _SETTING_TEXT)
#: The plugin's settings that change the analysis: with the clip facts, a clip's signature.
SIGNATURE_FIELDS = tuple(name for name in PLUGIN_FIELDS if name in ANALYSIS_FIELDS)


def _setting_param(name: str) -> Param:
    """The param of Settings field ``name``: its default and range are the Settings' own."""
    label, hint = _SETTING_TEXT[name]
    default = getattr(Settings(), name)
    if name in _CHOICES:
        options = _CHOICES[name]
        return Param(name, label, hint, "Choice", options.index(default), 0, len(options) - 1, options)
    if isinstance(default, bool):
        return Param(name, label, hint, "Bool", int(default), 0, 1)
    low, high = _RANGES[name]
    return Param(name, label, hint, "Int" if isinstance(default, int) else "Double", default, low, high)


#: Every param, settings first, then the controls.
PARAMS = tuple(_setting_param(name) for name in PLUGIN_FIELDS) + (
    Param("reanalyze", "Reanalyze", "Drop the cached analysis of this clip and analyse it again.", "PushButton"),
    Param("status", "Status", "State of this clip's analysis.", "Label"),
    Param("clip_key", "Clip key", "Names the cached analysis of the source clip (internal).", "Hidden"),
)


def setting_types() -> dict[str, type]:
    """The Python type of each plugin setting (its Settings field's): float, int, bool or str."""
    defaults = Settings()
    return {name: type(getattr(defaults, name)) for name in PLUGIN_FIELDS}


def clip_fact_types() -> dict[str, type]:
    """The clip facts the plugin hands the server, with their types: ClipInfo's fields (but its
    file path) and whether the host premultiplied the clip."""
    hints = typing.get_type_hints(ClipInfo)
    facts = {f.name: hints[f.name] for f in dataclasses.fields(ClipInfo) if f.name != "path"}
    return {**facts, "premultiplied": bool}
