"""Flow benchmark: does brightness normalization help DIS flow on flickering clips? (issue 3, item 1)

For every synthetic clip, the mean end-point error of :func:`deflicker.method.flow.estimate_flow`
(f_{t->t-1}) against the exact flow, over the exact valid pixels: on the clean frames (the
reference), and on the flickering frames with and without ``FlowSettings.normalize_brightness``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from deflicker.bench.common import markdown_table, size_label, text_table, write_json, write_text
from deflicker.settings import FlowSettings

HEADERS = ("clip", "family", "EPE clean", "EPE plain", "EPE normalized", "normalized / plain")
FORMATS = ("", "", ".3f", ".3f", ".3f", ".3f")


def flow_epe(frames: np.ndarray, flow_prev: np.ndarray, valid_prev: np.ndarray, settings: FlowSettings) -> float:
    """Mean end-point error (pixels) of estimated f_{t->t-1} against the exact flow, valid pixels, t >= 1."""
    from deflicker.method.flow import estimate_flow

    total, count = 0.0, 0
    for t in range(1, len(frames)):
        mask = np.asarray(valid_prev[t], dtype=bool)
        if not mask.any():
            continue
        est = estimate_flow(frames[t][..., :3], frames[t - 1][..., :3], settings)
        err = np.linalg.norm(est - flow_prev[t], axis=-1)
        total += float(err[mask].sum())
        count += int(mask.sum())
    return total / count if count else float("nan")


def score_flow(clip: Any, settings: FlowSettings = FlowSettings()) -> dict[str, Any]:
    """The clip's row: EPE on clean, flickering without and with normalization."""
    plain = FlowSettings(preset=settings.preset, normalize_brightness=False, fb_threshold=settings.fb_threshold)
    normed = FlowSettings(preset=settings.preset, normalize_brightness=True, fb_threshold=settings.fb_threshold)
    row = {"name": clip.name, "family": clip.family,
           "epe_clean": flow_epe(clip.clean, clip.flow_prev, clip.valid_prev, normed),
           "epe_plain": flow_epe(clip.flickering, clip.flow_prev, clip.valid_prev, plain),
           "epe_normalized": flow_epe(clip.flickering, clip.flow_prev, clip.valid_prev, normed)}
    row["ratio"] = row["epe_normalized"] / row["epe_plain"] if row["epe_plain"] > 0 else float("nan")
    return row


def _rows(results: dict[str, Any]) -> list[list[Any]]:
    rows = [[r["name"], r["family"], r["epe_clean"], r["epe_plain"], r["epe_normalized"], r["ratio"]]
            for r in results["clips"]]
    m = results["mean"]
    rows.append(["[mean]", "", m["epe_clean"], m["epe_plain"], m["epe_normalized"], m["ratio"]])
    return rows


def run_flow(args: argparse.Namespace, *, size: tuple[int, int], frames: int) -> int:
    """Print and write (flow.json, flow.md) the flow table and whether normalization helps."""
    from tqdm import tqdm

    from deflicker.bench.quality import iter_clips

    names, clips = iter_clips(data=args.data, size=size, frames=frames, long_frames=args.long_frames,
                              seed=args.seed, only=args.only)
    results: dict[str, Any] = {"suite": "flow", "size": size_label(size), "frames": frames, "clips": []}
    for clip in tqdm(clips, total=len(names), desc="flow", file=sys.stderr, leave=False):
        results["clips"].append(score_flow(clip))
    keys = ("epe_clean", "epe_plain", "epe_normalized")
    mean = {k: float(np.nanmean([r[k] for r in results["clips"]])) for k in keys}
    mean["ratio"] = mean["epe_normalized"] / mean["epe_plain"] if mean["epe_plain"] > 0 else float("nan")
    results["mean"] = mean
    helped = sum(r["ratio"] < 1.0 for r in results["clips"])
    status = "PASS" if mean["ratio"] < 1.0 else "FAIL"
    verdict = (f"{status:<4}  brightness normalization lowers the flow error on flickering clips: mean EPE "
               f"{mean['epe_normalized']:.3f} vs {mean['epe_plain']:.3f} px ({mean['ratio']:.2f}x); "
               f"per-clip ratio {float(np.nanmean([r['ratio'] for r in results['clips']])):.2f}x on average; "
               f"better on {helped}/{len(results['clips'])} clips")
    results["target"] = verdict
    out: Path = args.out  # created by `deflicker bench` before any work
    write_json(out / "flow.json", results)
    write_text(out / "flow.md", f"# deflicker bench flow ({size_label(size)}, {frames} frames)\n\n"
               "End-point error in pixels of DIS flow f_{t->t-1} against the exact flow, over valid pixels.\n\n"
               + markdown_table(HEADERS, _rows(results), FORMATS) + f"\n\n{verdict}\n")
    print(text_table(HEADERS, _rows(results), FORMATS))
    print(f"\nTARGETS (issue 3, item 1)\n{verdict}")
    return 0
