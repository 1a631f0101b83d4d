"""The targets of issues 3, 4 and 13, checked on the quality benchmark's results.

Each check gives PASS, FAIL or SKIP (a method or clip it needs is missing) with the measured
number. The benchmark reports them; it never fails because of them. On families whose truth
changes over time (``metrics.TRUTH_CHANGES``: fades) the per-clip Ewarp targets compare
Ewarp's previous-frame term alone (:func:`ewarp_keys`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

from deflicker.bench.metrics import TRUTH_CHANGES

#: The paper's protocol: global flicker shared over windows of W = 1, 3, 10 frames.
PAPER_CLIPS = ("global_w1_", "global_w3_", "global_w10_")  # clip name prefixes
OURS = "full"
#: Issue 13: a static region's output equals the input within one 8-bit code value.
STATIC_TOLERANCE = 1.0 / 255.0
#: Issue 13: old film's Ewarp at most this times the raw input's.
OLD_FILM_RAW = 0.8
#: Issue 13: the detail kept on old film (metrics.detail_kept: lowest per-frame correlation of the
#: output's fine detail with the input's) at least this.
OLD_FILM_DETAIL = 0.95


@dataclass(frozen=True)
class Target:
    """One checked target: status PASS / FAIL / SKIP, what it says, what was measured."""

    status: str
    name: str
    measured: str

    def line(self) -> str:
        """'PASS  name: measured'."""
        return f"{self.status:<4}  {self.name}: {self.measured}"


def _value(entry: dict[str, Any], method: str, key: str) -> Optional[float]:
    row = entry["rows"].get(method)
    if row is None or "error" in row or row.get(key) is None:
        return None
    return float(row[key])


def ewarp_keys(entry: dict[str, Any]) -> tuple[str, str, str]:
    """(row key, raw key, floor key) of the Ewarp a clip's targets compare: on a family whose
    truth changes over time (TRUTH_CHANGES) the previous-frame term alone ("ewarp_prev",
    "raw_ewarp_prev", "floor_prev"): against frame 0 even the clean fade differs by its whole
    ramp, and an output that kept the ramp would score worse than one that flattened it.
    Elsewhere the whole Ewarp ("ewarp", "raw_ewarp", "floor")."""
    if entry["family"] in TRUTH_CHANGES:
        return "ewarp_prev", "raw_ewarp_prev", "floor_prev"
    return "ewarp", "raw_ewarp", "floor"


def removed_fraction(entry: dict[str, Any], method: str, floor: Optional[float] = None) -> Optional[float]:
    """(raw - method) / (raw - floor) in Ewarp (:func:`ewarp_keys`): the share of the flicker
    above the floor (the clean clip's, or ``floor``) removed."""
    key, raw_key, floor_key = ewarp_keys(entry)
    ewarp = _value(entry, method, key)
    span = entry[raw_key] - (entry[floor_key] if floor is None else floor)
    if ewarp is None or span <= 0:
        return None
    return (entry[raw_key] - ewarp) / span


def _paper_clips(clips: list[dict[str, Any]]) -> list[dict[str, Any]]:
    chosen = [e for e in clips if e["name"].startswith(PAPER_CLIPS)]
    return chosen or [e for e in clips if e["family"] == "global"]


def _mean_target(name: str, clips: list[dict[str, Any]], need: str,
                 measure: Callable[[list[dict[str, Any]]], Optional[float]], ok: Callable[[float], bool],
                 unit: str) -> Target:
    if not clips:
        return Target("SKIP", name, "no such clips in this run")
    value = measure(clips)
    if value is None:
        return Target("SKIP", name, f"a method it needs did not run ({need})")
    return Target("PASS" if ok(value) else "FAIL", name, f"{value:.3f}{unit} on {len(clips)} clips")


def _per_clip_target(name: str, clips: list[dict[str, Any]], need: str,
                     measure: Callable[[dict[str, Any]], Optional[float]], ok: Callable[[float], bool],
                     worst: Callable[[list[float]], float], unit: str) -> Target:
    if not clips:
        return Target("SKIP", name, "no such clips in this run")
    values = {e["name"]: measure(e) for e in clips}
    known = {k: v for k, v in values.items() if v is not None and not math.isnan(v)}
    if not known:
        return Target("SKIP", name, f"a method it needs did not run ({need})")
    w = worst(list(known.values()))
    where = next(k for k, v in known.items() if v == w)
    passed = sum(ok(v) for v in known.values())
    missing = len(values) - len(known)
    status = "PASS" if passed == len(values) else "FAIL"
    tail = f", {missing} not measured" if missing else ""
    return Target(status, name, f"worst {w:.3f}{unit} ({where}); {passed}/{len(values)} clips pass{tail}")


def _ratio_of_means(clips: list[dict[str, Any]], method: str, ref: str) -> Optional[float]:
    vals = [_value(e, method, "ewarp") for e in clips]
    if any(v is None for v in vals):
        return None
    refs = [e["raw_ewarp"] if ref == "raw" else e["floor"] for e in clips]
    return float(sum(vals)) / max(float(sum(refs)), 1e-12)  # type: ignore[arg-type]


def _psnr_gain(clips: list[dict[str, Any]], method: str, ref: str) -> Optional[float]:
    ours = [_value(e, method, "psnr") for e in clips]
    base = [_value(e, ref, "psnr") for e in clips]
    if any(v is None for v in ours + base):
        return None
    return (sum(ours) - sum(base)) / len(clips)  # type: ignore[arg-type]


def _diff(entry: dict[str, Any], a: str, b: str, key: str) -> Optional[float]:
    va, vb = _value(entry, a, key), _value(entry, b, key)
    return None if va is None or vb is None else va - vb


def check_targets(results: dict[str, Any], ours: str = OURS) -> list[Target]:
    """Every target of issues 3, 4 and 13 that the quality results can check."""
    clips = results["clips"]
    paper = _paper_clips(clips)
    names = "/".join(e["name"] for e in paper) or "global clips"
    clean_target = [e for e in clips if e["target_is_clean"]]
    processed = [e for e in clips if e["family"] == "processed"]
    lowest, highest = min, max
    out = [
        _mean_target(f"paper protocol ({names}): mean Ewarp {ours} <= 0.25x raw", paper, f"{ours}",
                     lambda c: _ratio_of_means(c, ours, "raw"), lambda v: v <= 0.25, "x raw"),
        _mean_target(f"paper protocol: mean Ewarp {ours} <= 1.5x floor", paper, ours,
                     lambda c: _ratio_of_means(c, ours, "floor"), lambda v: v <= 1.5, "x floor"),
        _mean_target(f"paper protocol: mean PSNR {ours} >= raw + 6 dB", paper, f"{ours}, raw",
                     lambda c: _psnr_gain(c, ours, "raw"), lambda v: v >= 6.0, " dB over raw"),
        _per_clip_target("global clips: Ewarp(atlas) <= 1.5x floor", [e for e in clips if e["family"] == "global"],
                         "atlas", lambda e: _value(e, "atlas", "ratio_floor"), lambda v: v <= 1.5, highest, "x floor"),
        _per_clip_target(f"every clip: Ewarp({ours}) < Ewarp(ffmpeg)", clips, f"{ours}, ffmpeg",
                         lambda e: _ratio(e, ours, "ffmpeg"), lambda v: v < 1.0, highest, "x ffmpeg"),
        _with_look_bound(_per_clip_target(f"every clip: (raw - {ours}) >= 0.6 (raw - floor)", clips, ours,
                                          lambda e: removed_fraction(e, ours), lambda v: v >= 0.6, lowest,
                                          " removed"), processed, ours),
        _per_clip_target(f"clean-target clips: PSNR({ours}) > PSNR(raw)", clean_target, f"{ours}, raw",
                         lambda e: _diff(e, ours, "raw", "psnr"), lambda v: v > 0, lowest, " dB margin"),
        _per_clip_target(f"clean-target clips: PSNR({ours}) > PSNR(ffmpeg)", clean_target, f"{ours}, ffmpeg",
                         lambda e: _diff(e, ours, "ffmpeg", "psnr"), lambda v: v > 0, lowest, " dB margin"),
        _with_look_bound(_per_clip_target(f"processed clips: (raw - {ours}) >= 0.6 (raw - floor)", processed, ours,
                                          lambda e: removed_fraction(e, ours), lambda v: v >= 0.6, lowest,
                                          " removed"), processed, ours),
        _per_clip_target(f"processed clips: PSNR({ours}) to the input >= 25 dB", processed, ours,
                         lambda e: _value(e, ours, "psnr"), lambda v: v >= 25.0, lowest, " dB"),
    ]
    return out + _film_targets(clips, ours) + time_targets(clips, ours)


def _film_targets(clips: list[dict[str, Any]], ours: str) -> list[Target]:
    """Issue 13: static regions pass through; old film more consistent than raw and ffmpeg, detail kept."""
    static = [e for e in clips if any("static" in row for row in e["rows"].values())]
    film = [e for e in clips if e["family"] == "oldfilm"]
    return [
        _per_clip_target(f"static regions: max |{ours} - input| <= 1/255", static, ours,
                         lambda e: _value(e, ours, "static"), lambda v: v <= STATIC_TOLERANCE, max, ""),
        _per_clip_target(f"old film: Ewarp({ours}) <= {OLD_FILM_RAW}x raw", film, ours,
                         lambda e: _value(e, ours, "ratio_raw"), lambda v: v <= OLD_FILM_RAW, max, "x raw"),
        _per_clip_target(f"old film: Ewarp({ours}) < Ewarp(ffmpeg)", film, f"{ours}, ffmpeg",
                         lambda e: _ratio(e, ours, "ffmpeg"), lambda v: v < 1.0, max, "x ffmpeg"),
        _per_clip_target(f"old film: detail kept({ours}) >= {OLD_FILM_DETAIL}", film, ours,
                         lambda e: _value(e, ours, "detail"), lambda v: v >= OLD_FILM_DETAIL, min, ""),
    ]


def _brightness_correlation(entry: dict[str, Any], method: str) -> Optional[float]:
    """Pearson correlation of a method's per-frame mean brightness with the clean clip's."""
    import numpy as np

    curve, truth = entry["brightness"].get(method), entry["brightness"]["clean"]
    if curve is None or np.std(curve) == 0 or np.std(truth) == 0:
        return None
    return float(np.corrcoef(truth, curve)[0, 1])


def time_targets(clips: list[dict[str, Any]], ours: str = OURS) -> list[Target]:
    """Issue 13's targets for content that changes over time: fades keep their ramp, lossy
    repeated frames come out identical."""
    fades = [e for e in clips if e["family"] == "fade"]
    repeats = [e for e in clips if e["family"] == "repeat"]
    return [
        _per_clip_target(f"fade clips: PSNR({ours}) >= PSNR(raw) + 6 dB", fades, f"{ours}, raw",
                         lambda e: _diff(e, ours, "raw", "psnr"), lambda v: v >= 6.0, min, " dB over raw"),
        _per_clip_target(f"fade clips: brightness of {ours} follows the clean ramp (Pearson r >= 0.98)", fades, ours,
                         lambda e: _brightness_correlation(e, ours), lambda v: v >= 0.98, min, ""),
        _per_clip_target(f"repeat clips: repeated frames of {ours} equal within 1/255", repeats, ours,
                         lambda e: _value(e, ours, "repeat_max"), lambda v: v <= 1.0 / 255, max, " max difference"),
    ]


def _with_look_bound(target: Target, processed: list[dict[str, Any]], ours: str) -> Target:
    """The processed-clip removal target, with what the flicker-free look itself scores where it
    removes less than 0.6 of (raw - floor) (no output faithful to the look gets much further
    there) and the share of (raw - look) that ``ours`` removes on those clips."""
    notes = []
    for entry in processed:
        bound = removed_fraction(entry, "look")
        if bound is None or bound >= 0.6:
            continue
        mine = removed_fraction(entry, ours, floor=_value(entry, "look", ewarp_keys(entry)[0]))
        share = "" if mine is None else f", {ours} removes {mine:.3f} of (raw - look)"
        notes.append(f"{entry['name']}: the flicker-free look itself removes {bound:.3f}{share}")
    if not notes:
        return target
    return Target(target.status, target.name, f"{target.measured}; {'; '.join(notes)}")


def _ratio(entry: dict[str, Any], a: str, b: str) -> Optional[float]:
    """Ewarp (:func:`ewarp_keys`) of method ``a`` over method ``b``'s."""
    key = ewarp_keys(entry)[0]
    va, vb = _value(entry, a, key), _value(entry, b, key)
    return None if va is None or vb is None or vb <= 0 else va / vb


def targets_text(targets: list[Target]) -> str:
    """One line per target."""
    return "\n".join(t.line() for t in targets)


def targets_markdown(targets: list[Target]) -> str:
    """A Markdown list of the targets."""
    return "\n".join(f"- **{t.status}** {t.name}: {t.measured}" for t in targets)


def targets_json(targets: list[Target]) -> list[dict[str, str]]:
    """The targets as JSON-ready dicts."""
    return [asdict(t) for t in targets]
