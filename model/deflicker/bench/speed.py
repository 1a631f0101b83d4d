"""``deflicker bench speed``: analysis and render cost at 1080p and 4K, and how it grows.

Frames are synthesized on the fly (a photo panned and zoomed to the target size with a
per-frame gain) through :class:`~deflicker.io.source.CallbackSource`, so no clip is ever held in
memory. Each (size, frame count) case runs in a fresh Python process, so its peak memory is
its own: ``peak MB`` is above the process's baseline after imports, ``RSS MB`` the whole
process. Baselines from the same run: the cost of synthesizing a frame, and ffmpeg's
``deflicker`` filter on the same frames.

Render is timed two ways: *random access* (one frame asked for alone, as a host scrubbing the
timeline does: its whole refinement window is filtered and its flows estimated from cold) and
*render queue* (the first frames in order through :func:`deflicker.render_queue.render_in_order` with
one worker per core of the issue's 2-core machine, what a host's render queue or ``deflicker
run`` does: each frame's filter and flows are computed once and shared by its neighbours; the
median of QUEUE_RUNS runs, each on a fresh session). The 1080p target applies to the render queue;
both are printed.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from deflicker.bench.common import PeakMemory, markdown_table, size_label, text_table, write_json, write_text
from deflicker.io.source import CallbackSource, ClipInfo

log = logging.getLogger(__name__)

HEADERS = ("size", "frames", "analysis s/frame", "net of synth", "synth s/frame", "peak MB", "RSS MB",
           "random access s/frame", "net of synth", "render queue s/frame", "net of synth", "ffmpeg s/frame")
FFMPEG_FRAMES = 12
FORMATS = ("", "", ".4f", ".4f", ".4f", ".0f", ".0f", ".4f", ".4f", ".4f", ".4f", ".4f")
#: Frames the render-queue timing renders in order, its workers (the issue's 2 CPU cores), and how
#: many times it runs (the median counts: one run of 24 1080p frames moves by 10% on 2 cores).
QUEUE_FRAMES = 24
QUEUE_WORKERS = 2
QUEUE_RUNS = 3
#: Frames whose synthesis is timed alone (the median is subtracted from the net figures).
SYNTH_SAMPLES = 7


def photo_source(size: tuple[int, int], frames: int, seed: int = 0,
                 fetches: Optional[list[int]] = None) -> CallbackSource:
    """A (H, W) clip of a slowly panned and zoomed photo with a random per-frame gain, made per fetch.

    ``fetches``, when given, gets one element added per frame made (so callers can count them).
    """
    import cv2
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut(), dtype=np.float32) / np.float32(255.0)
    h, w = size
    ph, pw = photo.shape[:2]

    def fetch(t: int) -> np.ndarray:
        if fetches is not None:
            fetches.append(t)
        zoom = 1.0 + 0.2 * np.sin(2 * np.pi * t / 240.0)
        s = 0.7 * min(ph / h, pw / w) / zoom  # photo pixels per output pixel
        cx = pw / 2 + 0.15 * pw * np.sin(2 * np.pi * t / 400.0)
        cy = ph / 2 + 0.1 * ph * np.cos(2 * np.pi * t / 300.0)
        m = np.array([[s, 0, cx - s * w / 2], [0, s, cy - s * h / 2]], dtype=np.float32)
        frame = np.asarray(cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                          borderMode=cv2.BORDER_REFLECT), dtype=np.float32)
        gain = np.random.default_rng([seed, t]).uniform(0.75, 1.25)
        return frame * np.float32(gain)

    return CallbackSource(ClipInfo(width=w, height=h, channels=3, frame_count=frames, bit_depth=32), fetch)


def ffmpeg_seconds_per_frame(source: CallbackSource, frames: int, vf: str) -> float:
    """Seconds per frame of ``ffmpeg -vf vf`` on the first frames, streamed through 16-bit pipes."""
    from deflicker.bench.methods import ffmpeg_command, to_rgb48

    if shutil.which("ffmpeg") is None:
        return float("nan")
    n = min(frames, len(source))
    h, w = source.info.height, source.info.width
    cmd = ffmpeg_command(w, h, vf, fps=source.info.fps)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def feed() -> None:
        assert proc.stdin is not None
        try:
            for t in range(n):
                proc.stdin.write(to_rgb48(source[t]))
        except BrokenPipeError:
            pass
        finally:
            proc.stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    assert proc.stdout is not None
    frame_bytes, got = h * w * 6, 0
    while proc.stdout.read(frame_bytes):
        got += 1
    writer.join()
    proc.wait()
    return (time.perf_counter() - start) / n if got == n and proc.returncode == 0 else float("nan")


def run_case(spec: dict[str, Any]) -> dict[str, Any]:
    """One case (in its own process): analysis of ``frames`` frames at ``size``, optionally render timings."""
    import deflicker.method.analysis  # noqa: F401 - imports (torch) belong to the baseline, not the case
    from deflicker.bench.methods import FFMPEG_FILTER
    from deflicker.engine import Engine
    from deflicker.settings import Settings

    size, frames = (int(spec["size"][0]), int(spec["size"][1])), int(spec["frames"])
    fetched: list[int] = []
    source = photo_source(size, frames, seed=int(spec.get("seed", 0)), fetches=fetched)
    source[0]  # warm up, then time the synthesis alone: the median of a few frames (one slow
    synth_times = []  # fetch skewed a mean, and every net figure below with it)
    for i in range(SYNTH_SAMPLES):
        t0 = time.perf_counter()
        source[(i * 7) % frames]
        synth_times.append(time.perf_counter() - t0)
    synth_s = statistics.median(synth_times)
    engine = Engine(Settings(analysis_size=int(spec["analysis_size"]), device="cpu"), cache_dir=spec["cache_dir"])
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        session = engine.open(source)
        session.analyze()
        analysis_s = time.perf_counter() - t0
    out: dict[str, Any] = {"size": size_label(size), "height": size[0], "width": size[1], "frames": frames,
                           "analysis_seconds_per_frame": analysis_s / frames,
                           "analysis_net_seconds_per_frame": max(0.0, analysis_s / frames - synth_s),
                           "synth_seconds_per_frame": synth_s, "peak_mb": mem.peak_mb, "rss_mb": mem.absolute_mb}
    k = int(spec.get("render_frames", 0))
    if k > 0:
        for t in (0, frames - 1):  # loads the filter weights, warms torch up; not timed
            session.render(t)
        picks = sorted(set(np.linspace(min(frames - 1, 6), frames - 1, k).round().astype(int).tolist()))
        times, net = [], []
        for t in picks:
            fetched.clear()
            t0 = time.perf_counter()
            session.render(int(t))
            times.append(time.perf_counter() - t0)
            net.append(max(0.0, times[-1] - len(fetched) * synth_s))  # the source frames it read are not ours
        out["render_seconds_per_frame"] = statistics.median(times)
        out["render_net_seconds_per_frame"] = statistics.median(net)
        runs = sorted((render_queue_timing(engine.open(source), fetched, synth_s) for _ in range(QUEUE_RUNS)),
                      key=lambda r: r["queue_net_seconds_per_frame"])
        out.update(runs[len(runs) // 2])  # the median run
        out["queue_net_runs"] = [r["queue_net_seconds_per_frame"] for r in runs]
        out["ffmpeg_seconds_per_frame"] = ffmpeg_seconds_per_frame(source, FFMPEG_FRAMES, FFMPEG_FILTER)
    return out


def render_queue_timing(session: Any, fetched: list[int], synth_s: float) -> dict[str, float]:
    """Seconds per frame of the first QUEUE_FRAMES frames rendered in order by QUEUE_WORKERS
    workers (a fresh session: nothing memoized), gross and net of the frames' synthesis (which
    runs in the workers too, so it is shared among them)."""
    from deflicker.render_queue import render_in_order

    session.analyze()  # a cache hit: the analysis is not what is timed
    n = min(len(session), QUEUE_FRAMES)
    fetched.clear()
    t0 = time.perf_counter()
    for _ in render_in_order(session, n, workers=QUEUE_WORKERS):
        pass
    wall = time.perf_counter() - t0
    return {"queue_seconds_per_frame": wall / n,
            "queue_net_seconds_per_frame": max(0.0, wall - len(fetched) * synth_s / QUEUE_WORKERS) / n}


def _run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`run_case` in a fresh interpreter; an error row if it fails."""
    proc = subprocess.run([sys.executable, "-m", "deflicker.bench.speed", json.dumps(spec)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    base = {"size": size_label(tuple(spec["size"])), "height": spec["size"][0], "width": spec["size"][1],
            "frames": spec["frames"]}
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return {**base, "error": lines[-1] if lines else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _get(rows: list[dict[str, Any]], size: tuple[int, int], frames: Optional[int] = None) -> list[dict[str, Any]]:
    return [r for r in rows if (r["height"], r["width"]) == tuple(size) and "error" not in r
            and (frames is None or r["frames"] == frames)]


def speed_targets(rows: list[dict[str, Any]]) -> list[str]:
    """PASS/FAIL/SKIP lines for the speed targets of issues 3 and 4, and the growth ratios."""
    hd, uhd = (1080, 1920), (2160, 3840)
    lines = []

    def add(ok: Optional[bool], text: str) -> None:
        lines.append(f"{'SKIP' if ok is None else 'PASS' if ok else 'FAIL':<4}  {text}")

    hd_rows = _get(rows, hd)
    worst = max((r["analysis_seconds_per_frame"] for r in hd_rows), default=None)
    add(None if worst is None else worst <= 0.5, f"fast analysis at 1080p <= 0.5 s/frame: "
        + ("not run" if worst is None else f"worst {worst:.3f} s/frame"))
    for size in sorted({(r["height"], r["width"]) for r in rows if "error" not in r}):
        got = sorted(_get(rows, size), key=lambda r: r["frames"])
        if len(got) >= 2:
            a, b = got[0], got[-1]
            growth = b["analysis_seconds_per_frame"] / max(a["analysis_seconds_per_frame"], 1e-9)
            mem = b["peak_mb"] / max(a["peak_mb"], 1e-9)
            add(growth <= 1.25, f"linear growth at {size_label(size)}: s/frame at {b['frames']} frames is "
                f"{growth:.2f}x that at {a['frames']} (<= 1.25x); peak memory grows {mem:.2f}x")
    big = [r for r in hd_rows if r["frames"] >= 1000]
    add(None if not big else max(r["rss_mb"] for r in big) < 2048, "peak memory < 2 GB for 1000 frames of 1080p: "
        + ("not run" if not big else f"{max(r['rss_mb'] for r in big):.0f} MB RSS "
           f"({max(r['peak_mb'] for r in big):.0f} MB above baseline)"))
    hd_r = next((r for r in hd_rows if "queue_seconds_per_frame" in r), None)
    uhd_r = next((r for r in _get(rows, uhd) if "queue_seconds_per_frame" in r), None)
    add(None if hd_r is None else hd_r["queue_net_seconds_per_frame"] <= 0.25,
        "render queue at 1080p on 2 cores <= 0.25 s/frame: "
        + ("not run" if hd_r is None else f"{hd_r['queue_net_seconds_per_frame']:.3f} s/frame net of the source "
           f"frames' synthesis ({hd_r['queue_seconds_per_frame']:.3f} gross; random access "
           f"{hd_r['render_net_seconds_per_frame']:.3f} s for one frame alone, one thread)"))
    ratio = (uhd_r["queue_net_seconds_per_frame"] / max(hd_r["queue_net_seconds_per_frame"], 1e-9)
             if hd_r is not None and uhd_r is not None else None)
    spread = "" if ratio is None else (  # the lowest and the highest ratio of a 4K run to a 1080p run
        f"; runs' extremes {min(uhd_r['queue_net_runs']) / max(max(hd_r['queue_net_runs']), 1e-9):.2f}"
        f"-{max(uhd_r['queue_net_runs']) / max(min(hd_r['queue_net_runs']), 1e-9):.2f}x")
    add(None if ratio is None else ratio <= 2.5, "render 4K / 1080p <= 2.5x: "
        + ("not run" if ratio is None else f"{ratio:.2f}x (render queue, net, median of {QUEUE_RUNS} runs{spread})"))
    return lines


def _table_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    keys = ("analysis_seconds_per_frame", "analysis_net_seconds_per_frame", "synth_seconds_per_frame", "peak_mb",
            "rss_mb", "render_seconds_per_frame", "render_net_seconds_per_frame", "queue_seconds_per_frame",
            "queue_net_seconds_per_frame", "ffmpeg_seconds_per_frame")
    out = []
    for r in rows:
        if "error" in r:
            out.append([r["size"], r["frames"], f"error: {r['error']}"[:70]] + [None] * (len(keys) - 1))
        else:
            out.append([r["size"], r["frames"]] + [r.get(k) for k in keys])
    return out


def run_speed(args: argparse.Namespace, *, sizes: list[tuple[int, int]], frame_counts: list[int]) -> int:
    """Run every (size, frames) case, print the table and the targets, write speed.json / speed.md."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="deflicker-bench-speed-") as cache:
        for size in sizes:
            for i, frames in enumerate(frame_counts):
                print(f"speed: {size_label(size)} x {frames} frames ...", file=sys.stderr, flush=True)
                spec = {"size": list(size), "frames": frames, "analysis_size": args.analysis_size, "seed": args.seed,
                        "render_frames": args.render_frames if i == 0 else 0, "cache_dir": cache}
                rows.append(_run_child(spec))
    targets = speed_targets(rows)
    out: Path = args.out  # created by `deflicker bench` before any work
    write_json(out / "speed.json", {"suite": "speed", "analysis_size": args.analysis_size, "rows": rows,
                                    "targets": targets})
    write_text(out / "speed.md", f"# deflicker bench speed (analysis size {args.analysis_size})\n\n"
               + markdown_table(HEADERS, _table_rows(rows), FORMATS) + "\n\n" + "\n".join(f"- {t}" for t in targets) + "\n")
    print(text_table(HEADERS, _table_rows(rows), FORMATS))
    print("\nTARGETS (issues 3 and 4)\n" + "\n".join(targets))
    return 0


if __name__ == "__main__":  # one case, in its own process: JSON spec in argv[1], JSON result on stdout
    print(json.dumps(run_case(json.loads(sys.argv[1]))))
