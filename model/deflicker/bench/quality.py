"""The quality benchmark: every method on every synthetic clip, in one process.

For each clip and method: Ewarp (``deflicker.bench.metrics``, exact flow), its ratio to the raw
input and to the floor (the clean clip's own Ewarp), PSNR and SSIM (against the clean clip, or
the input for processed clips), the detail kept and, on clips with a static region, the largest
change there (``metrics.detail_kept``, ``metrics.static_error``), seconds per frame and peak memory. Rows are aggregated per
flicker family; :func:`run_quality` returns everything as one JSON-ready dict.
"""
from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional

import numpy as np

from deflicker.bench.common import markdown_table, text_table
from deflicker.bench.methods import ENGINE_METHODS, METHODS, REFERENCES, BenchContext, timed
from deflicker.errors import Cancelled, InvalidSettingsError, VideoIOError
from deflicker.method.image import mean_luminance

if TYPE_CHECKING:
    from deflicker.synth.clips import SynthClip

log = logging.getLogger(__name__)

HEADERS = ("clip", "method", "Ewarp", "x raw", "x floor", "PSNR", "SSIM", "detail", "static max", "s/frame", "peak MB")
ROW_KEYS = ("ewarp", "ratio_raw", "ratio_floor", "psnr", "ssim", "detail", "static", "seconds_per_frame", "peak_mb")
FORMATS = ("", "", ".4f", ".3f", ".2f", ".2f", ".4f", ".3f", ".4f", ".4f", ".1f")


def select_names(names: list[str], only: Optional[str]) -> list[str]:
    """Clip names picked by '--only a,b' (a clip name or a family prefix such as 'global')."""
    if not only:
        return names
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    picked = [n for n in names if any(n == w or n.startswith(w + "_") for w in wanted)]
    missing = [w for w in wanted if not any(n == w or n.startswith(w + "_") for n in names)]
    if missing or not picked:
        raise InvalidSettingsError(f"no synthetic clip named {', '.join(missing) or only!r} "
                                   f"(known: {', '.join(names)})")
    return picked


def iter_clips(*, data: Optional[Path], size: tuple[int, int], frames: int, long_frames: int, seed: int,
               only: Optional[str]) -> tuple[list[str], Iterator["SynthClip"]]:
    """(names, clips): from a ``deflicker synth`` folder, or generated in memory one at a time."""
    from deflicker.synth import clips as synth
    if data is None:
        names = select_names(synth.clip_names(long_frames=long_frames), only)
        return names, synth.make_set(size=size, frames=frames, seed=seed, long_frames=long_frames, names=names)
    if not data.is_dir():
        raise VideoIOError(f"{data} is not a folder of clips written by `deflicker synth`")
    paths = {p.stem if p.is_file() else p.name: p for p in sorted(data.iterdir()) if not p.name.startswith(".")
             and (p.is_dir() or p.suffix in (".npz", ".npy"))}
    standard = synth.clip_names(long_frames=long_frames or 1)
    names = select_names(sorted(paths, key=lambda n: (standard.index(n) if n in standard else len(standard), n)), only)
    if not names:
        raise VideoIOError(f"{data} holds no clips written by `deflicker synth`")
    return names, (synth.load_clip(paths[n]) for n in names)


def _score_method(name: str, clip: "SynthClip", context: BenchContext
                  ) -> tuple[Optional[np.ndarray], Optional[dict[str, Any]]]:
    """Run one method on one clip: (frames or None, row with the scores, time and memory); the
    row is None where the method does not apply to the clip."""
    from deflicker.bench import metrics
    extra_s, extra_mb = 0.0, 0.0
    if name in ENGINE_METHODS:
        stats = context.prepare(clip)
        extra_s, extra_mb = stats.seconds, stats.peak_mb
    context.child_peak_mb = 0.0
    try:
        result, seconds, peak = timed(lambda: METHODS[name](clip, context))
        if result is None:
            return None, None
        frames = np.asarray(result, dtype=np.float32)
        peak += context.child_peak_mb
        if frames.shape != clip.flickering.shape[:3] + (3,):
            raise ValueError(f"returned shape {frames.shape}, expected {clip.flickering.shape}")
        row: dict[str, Any] = dict(metrics.score(frames, clip))
    except (KeyboardInterrupt, Cancelled):
        raise
    except Exception as exc:  # noqa: BLE001 - a broken method is reported in its row
        log.debug("method %s failed on %s", name, clip.name, exc_info=True)
        return None, {"error": f"{type(exc).__name__}: {exc}"}
    row["seconds_per_frame"] = (seconds + extra_s) / len(frames)
    row["peak_mb"] = max(peak, extra_mb)
    if name in ENGINE_METHODS:
        row["analysis_seconds"] = extra_s
    return frames, row


def brightness(frames: np.ndarray) -> list[float]:
    """Mean luma of every frame."""
    return [mean_luminance(f) for f in frames]


def score_clip(clip: "SynthClip", methods: list[str], context: BenchContext,
               on_method: Optional[Any] = None) -> dict[str, Any]:
    """Every method on one clip: the clip's entry of the results (rows, floor, brightness curves;
    for families whose truth changes, ``metrics.TRUTH_CHANGES``, also the floor and the raw
    input's Ewarp in the previous-frame term alone: floor_prev, raw_ewarp_prev)."""
    from deflicker.bench import metrics
    floor = float(metrics.floor(clip))
    raw = metrics.score(clip.flickering, clip)
    raw_ewarp = float(raw["ewarp"])
    entry: dict[str, Any] = {"name": clip.name, "family": clip.family, "frames": int(len(clip.flickering)),
                             "height": int(clip.flickering.shape[1]), "width": int(clip.flickering.shape[2]),
                             "target_is_clean": bool(clip.target_is_clean), "floor": floor, "raw_ewarp": raw_ewarp,
                             "rows": {}, "brightness": {"input": brightness(clip.flickering),
                                                        "clean": brightness(clip.clean)}}
    if clip.family in metrics.TRUTH_CHANGES:  # their Ewarp targets compare the previous-frame term
        entry["floor_prev"] = float(metrics.floor_prev(clip))
        entry["raw_ewarp_prev"] = float(raw["ewarp_prev"])
    try:
        for name in methods:
            frames, row = _score_method(name, clip, context)
            if row is not None:  # None: the method does not apply to this clip
                if frames is not None:
                    row["ratio_raw"] = row["ewarp"] / raw_ewarp if raw_ewarp > 0 else math.nan
                    row["ratio_floor"] = row["ewarp"] / floor if floor > 0 else math.nan
                    if name not in REFERENCES:
                        entry["brightness"][name] = brightness(frames)
                entry["rows"][name] = row
            if on_method is not None:
                on_method(name)
    finally:
        context.release(clip)
    return entry


def _mean(values: Iterable[float]) -> float:
    vals = list(values)
    return float(np.mean(vals)) if vals else math.nan


def aggregate(clips: list[dict[str, Any]], methods: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per family (and 'all'): each method's mean Ewarp, ratio of means to raw and floor, mean PSNR/SSIM."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in clips:
        groups.setdefault(entry["family"], []).append(entry)
    if len(groups) > 1:
        groups["all"] = list(clips)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for family, members in groups.items():
        out[family] = {}
        for name in methods:
            ok = [e for e in members if "error" not in e["rows"].get(name, {"error": 1})]
            if not ok or any(name not in e["rows"] for e in members):
                continue  # not run, or a reference that only some of the group's clips have (look)
            rows = [e["rows"][name] for e in ok]
            ewarp = _mean(r["ewarp"] for r in rows)
            raw, floor = _mean(e["raw_ewarp"] for e in ok), _mean(e["floor"] for e in ok)
            frames = sum(e["frames"] for e in ok)
            out[family][name] = {
                "clips": len(ok), "ewarp": ewarp, "ratio_raw": ewarp / raw if raw > 0 else math.nan,
                "ratio_floor": ewarp / floor if floor > 0 else math.nan,
                "psnr": _mean(r["psnr"] for r in rows), "ssim": _mean(r["ssim"] for r in rows),
                "seconds_per_frame": sum(r["seconds_per_frame"] * e["frames"] for r, e in zip(rows, ok)) / frames,
                "peak_mb": max(r["peak_mb"] for r in rows)}
    return out


def _label(name: str) -> str:
    return f"{name} ({REFERENCES[name]})" if name in REFERENCES else name


def table_rows(results: dict[str, Any]) -> list[list[Any]]:
    """Rows of the quality table: every clip's methods, then every family's means."""
    rows: list[list[Any]] = []
    groups = [(e["name"], e["rows"]) for e in results["clips"]]
    groups += [(f"[{family}]", fam) for family, fam in results["families"].items()]
    for group, group_rows in groups:
        for i, name in enumerate(results["methods"]):
            row = group_rows.get(name)
            if row is None:
                continue
            head = [group if i == 0 else "", _label(name)]
            if "error" in row:
                rows.append(head + [f"error: {row['error']}"[:60]] + [None] * (len(HEADERS) - 3))
            else:
                rows.append(head + [row.get(k) for k in ROW_KEYS])  # per clip only: detail, static
    return rows


def render_text(results: dict[str, Any]) -> str:
    """The plain-text quality table."""
    return text_table(HEADERS, table_rows(results), FORMATS)


def render_markdown(results: dict[str, Any], targets_md: str) -> str:
    """bench.md: settings, the table and the targets."""
    s = results["settings"]
    head = (f"# deflicker bench (quality)\n\nclips: {len(results['clips'])}, size {s['size']}, frames {s['frames']} "
            f"(long clip {s['long_frames']}), seed {s['seed']}, analysis size {s['analysis_size']}, "
            f"ffmpeg `{s['ffmpeg_filter']}`. Rows per clip, then `[family]` means (ratios are ratios of means). "
            "PSNR/SSIM are against the clean clip, or against the input for processed clips.\n\n")
    return head + markdown_table(HEADERS, table_rows(results), FORMATS) + "\n\n## Targets\n\n" + targets_md + "\n"


def plot_brightness(path: Path, entry: dict[str, Any]) -> Path:
    """brightness_<clip>.png: mean brightness per frame of input, clean and each method."""
    from deflicker.cli.report import agg_pyplot, save_png

    fig, ax = agg_pyplot().subplots(figsize=(9, 4))
    styles: dict[str, dict[str, Any]] = {"input": {"color": "tab:red", "lw": 1.0},
                                         "clean": {"color": "black", "lw": 1.5, "ls": "--"}}
    palette = iter(["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
                    "tab:cyan", "tab:gray"] * 4)  # red and black are the input's and the clean clip's
    for label, curve in entry["brightness"].items():
        style = styles.get(label) or {"color": next(palette), "lw": 2.0 if label == "full" else 1.2}
        ax.plot(curve, label=label, **style)
    ax.set_xlabel("frame")
    ax.set_ylabel("mean brightness")
    ax.set_title(f"{entry['name']} ({entry['family']})")
    ax.legend(loc="best", fontsize=8)
    return save_png(fig, path, dpi=80)


def run_quality(names: list[str], clips: Iterator["SynthClip"], methods: list[str], context: BenchContext,
                out_dir: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Score every method on every clip, write the brightness plots; returns the results dict."""
    from tqdm import tqdm

    results: dict[str, Any] = {"suite": "quality", "settings": settings, "methods": methods, "clips": []}
    with tqdm(total=len(names) * len(methods), desc="bench", file=sys.stderr, leave=False) as bar:
        for clip in clips:
            bar.set_postfix_str(clip.name, refresh=True)
            entry = score_clip(clip, methods, context, on_method=lambda _name: bar.update(1))
            plot_brightness(out_dir / f"brightness_{clip.name}.png", entry)
            results["clips"].append(entry)
    results["families"] = aggregate(results["clips"], methods)
    return results
