"""A stand-in for deflicker.server.model_server with the same API, for testing the OFX bridge in isolation.

Selected with DEFLICKER_OFX_SERVER=_plugin_fake_server (tests/ on DEFLICKER_OFX_EXTRA_PATH).
It records what the bridge hands it (dtype, strides, writeability, the top-left pixel) so the
bridge's C++ checker can read the facts back through ``status(key)``.
"""
from __future__ import annotations

import json
import sys
import threading

import numpy as np

from deflicker.errors import Cancelled, VideoIOError

_lock = threading.Lock()
_clips: dict[str, dict] = {}
_facts: dict[str, object] = {}
_MAX = {8: 255.0, 16: 65535.0, 32: 1.0}


def _frame(key: str, fetch, i: int) -> np.ndarray:
    """Source frame i as float32 in [0, 1], checked against the clip's info (like the real server)."""
    info = _clips[key]["info"]
    view = fetch(i)
    if view.shape != (info["height"], info["width"], info["channels"]):
        raise VideoIOError(f"frame {i} is {view.shape[1]}x{view.shape[0]}, expected {info['width']}x{info['height']}")
    out = view.astype(np.float32) / np.float32(_MAX[info["bit_depth"]])
    if not np.isfinite(out).all():
        raise VideoIOError(f"frame {i} has NaN or infinite pixels")
    return out


def open_clip(instance_id: str, info: dict, settings: dict, fetch, persisted_key: str = "") -> str:
    """Record the clip and the facts of frame 0's view; return a key."""
    view = fetch(0)
    key = f"fake-{info['width']}x{info['height']}x{info['channels']}-{info['frame_count']}-{settings.get('method')}"
    with _lock:
        if key not in _clips:
            _clips[key] = {"info": dict(info), "means": None, "settings": dict(settings), "lock": threading.Lock(),
                           "analyses": 0}
        _facts[key] = {
            "dtype": str(view.dtype),
            "shape": list(view.shape),
            "strides": list(view.strides),
            "writeable": bool(view.flags.writeable),
            "owndata": bool(view.flags.owndata),
            "top_left": [round(float(v), 6) for v in view[0, 0]],
            "bottom_left": [round(float(v), 6) for v in view[-1, 0]],
            "instance_id": instance_id,
            "persisted_key": persisted_key,
            "settings": dict(settings),
            "sys_path": list(sys.path),
            "host_marker": getattr(sys, "host_marker", None),
        }
    return key


def analyze(key: str, fetch, progress=None, cancel=None) -> None:
    """Mean brightness of every frame (the whole-clip pass), one at a time per clip like the real server."""
    clip = _clips[key]
    with clip["lock"]:
        if clip["means"] is not None:
            return
        n = clip["info"]["frame_count"]
        means = []
        for i in range(n):
            if cancel is not None and cancel():
                raise Cancelled("analysis cancelled")
            means.append(float(_frame(key, fetch, i).mean()))
            if progress is not None:
                progress((i + 1) / n, "analysing")
        clip["means"] = means
        clip["analyses"] += 1


def reanalyze(key: str, fetch, progress=None, cancel=None) -> None:
    """Forget and recompute."""
    with _clips[key]["lock"]:
        _clips[key]["means"] = None
    analyze(key, fetch, progress, cancel)


def render(key: str, t: int, fetch, settings: dict, progress=None, cancel=None) -> np.ndarray:
    """Frame t times settings['strength'] (a plain, checkable function of the input)."""
    if settings.get("method") == "boom":
        raise RuntimeError("boom requested")
    analyze(key, fetch, progress, cancel)
    return _frame(key, fetch, t) * np.float32(settings.get("strength", 1.0))


def frames_needed(key: str, t: int, settings: dict, clip_facts=None) -> list[tuple[int, int]]:
    """The range of t and its neighbours inside the clip; [] for a key this process has not opened."""
    if key not in _clips:
        return []
    n = _clips[key]["info"]["frame_count"]
    return [(max(0, t - 1), min(n - 1, t + 1))]


def status(key: str) -> str:
    """The recorded facts of the key as JSON (the real server returns a short state string)."""
    facts = dict(_facts.get(key, {}))
    facts["analysed"] = key in _clips and _clips[key]["means"] is not None
    facts["analyses"] = _clips[key]["analyses"] if key in _clips else 0
    return json.dumps(facts)


def close_instance(instance_id: str) -> None:
    """Nothing to free."""


def purge_caches() -> None:
    """Nothing to free (the real server unloads idle sessions; clips stay known)."""
