"""``deflicker bench segments``: the first render of a long clip costs what a short clip's does.

Through the model server the plugin uses (:mod:`deflicker.server.model_server`), each clip is
opened and frame ``t`` rendered once with an empty cache, for a clip of ``short`` and of
``long`` frames; the host's fetches are counted. The clips are generated on demand (a panning
photo with global flicker), so a long clip costs no memory. Printed: frames fetched (calls and
distinct frames), seconds to the first frame, and the long/short ratios.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from deflicker.method.segments import segment_grid
from deflicker.settings import Settings


def panning_frame(size: tuple[int, int], seed: int = 0) -> Callable[[int], np.ndarray]:
    """``frame(i)``: frame i, (h, w, 3) float32, of an endless pan over a photo with global flicker."""
    import cv2
    from skimage import data

    photo = data.astronaut().astype(np.float32) / 255.0
    h, w = size

    def frame(i: int) -> np.ndarray:
        x = 40 + 0.5 * (i % 400) if (i // 400) % 2 == 0 else 240 - 0.5 * (i % 400)  # back and forth
        m = np.array([[0.5, 0, x], [0, 0.5, 60 + 0.1 * (i % 400)]], np.float32)
        out = np.asarray(cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP))
        gain = np.random.default_rng(seed * 100_003 + i).uniform(0.75, 1.25)
        return (out * np.float32(gain)).astype(np.float32)

    return frame


def first_render(frame_count: int, t: int, size: tuple[int, int], analysis_size: int, cache: Path) -> dict[str, float]:
    """Open a clip of ``frame_count`` frames in a fresh server and render frame t: fetches and seconds."""
    from deflicker.server.model_server import ModelServer

    frame = panning_frame(size)
    read: list[int] = []

    def fetch(i: int) -> np.ndarray:
        read.append(i)
        return frame(i)

    h, w = size
    facts = {"width": w, "height": h, "channels": 3, "frame_count": frame_count}
    plugin = {"analysis_size": analysis_size}
    server = ModelServer(cache_dir=cache)
    declared = server.frames_needed("", t, plugin, facts)
    start = time.perf_counter()
    key = server.open_clip("bench", facts, plugin, fetch)
    server.render(key, t, fetch, plugin)
    seconds = time.perf_counter() - start
    return {"frames": float(frame_count), "fetches": float(len(read)), "distinct": float(len(set(read))),
            "declared": float(sum(b - a + 1 for a, b in declared)), "seconds": seconds,
            "segments": float(len(segment_grid(frame_count, Settings().segment_frames)))}


def run_segments(out: Path, *, short: int = 200, long: int = 2000, t: int = 100, size: tuple[int, int] = (96, 128),
                 analysis_size: int = 128) -> dict[str, Any]:
    """Both first renders (a warm-up render first, so imports and model loading are not timed), printed."""
    from deflicker.bench.common import text_table, write_json

    with tempfile.TemporaryDirectory(prefix="deflicker-bench-segments-") as tmp:
        first_render(8, 0, size, analysis_size, Path(tmp) / "warm")
        rows = {n: first_render(n, t, size, analysis_size, Path(tmp) / str(n)) for n in (short, long)}
    print(text_table(("clip frames", "segments", "fetches", "distinct frames", "declared", "first frame s"),
                     [[int(r["frames"]), int(r["segments"]), int(r["fetches"]), int(r["distinct"]), int(r["declared"]),
                       r["seconds"]] for r in rows.values()]))
    ratio_frames = rows[long]["distinct"] / rows[short]["distinct"]
    ratio_seconds = rows[long]["seconds"] / rows[short]["seconds"]
    print(f"\nlong/short ({long}/{short} frames): frames read x{ratio_frames:.2f}, time to first frame x{ratio_seconds:.2f}")
    bound = Settings().segment_frames * 2 + 12 + 8  # the last segment's longest span, and the fingerprint
    status = "PASS" if rows[long]["distinct"] <= bound else "FAIL"
    print(f"\nTARGETS (issue 15)\n{status:<4}  first render of a {long}-frame clip reads at most one segment: "
          f"{int(rows[long]['distinct'])} frames (bound {bound})")
    result = {"suite": "segments", "t": t, "size": list(size), "analysis_size": analysis_size,
              "clips": {str(n): r for n, r in rows.items()}, "ratio_frames": ratio_frames,
              "ratio_seconds": ratio_seconds}
    write_json(out / "segments.json", result)
    return result
