"""``deflicker bench run``: peak memory of an end-to-end ``deflicker run`` (issue 16: at most
2 GB on 40 frames of 4K).

A clip of the speed benchmark's panned photo (:func:`deflicker.bench.speed.photo_source`) is
written as a 16-bit FFV1 ``.mkv``, then ``deflicker run`` deflickers it into another ``.mkv``
in a child process with an empty analysis cache, so the analysis, the render and the encoder
are all measured. The peak is the child's own maximum resident set (``ru_maxrss`` from
``os.wait4``), the figure the issue's target is about.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from deflicker.bench.common import size_label, text_table, write_json

#: Issue 16: peak resident memory of `deflicker run` on 40 frames of 4K.
RUN_TARGET_MB = 2048.0


def write_photo_clip(path: Path, size: tuple[int, int], frames: int, seed: int = 0) -> Path:
    """The speed benchmark's panned photo, ``frames`` frames of ``size`` (h, w), as a 16-bit clip at ``path``."""
    from deflicker.bench.speed import photo_source
    from deflicker.io.files import write_clip

    source = photo_source(size, frames, seed=seed)
    return write_clip(path, (source[t].clip(0.0, 1.0) for t in range(frames)), fps=24.0, bit_depth=16)


def measure_run(src: Path, dst: Path, cache_dir: Path) -> dict[str, Any]:
    """Run ``deflicker run src -o dst`` in a child process: its exit code, wall seconds and
    peak resident memory (MiB)."""
    cmd = [sys.executable, "-m", "deflicker", "run", str(src), "-o", str(dst), "--cache-dir", str(cache_dir),
           "--overwrite"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    row: dict[str, Any] = {"returncode": proc.returncode, "seconds": time.perf_counter() - start,
                           "peak_mb": usage.ru_maxrss / 1024.0}  # Linux reports KiB
    if proc.returncode != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        row["error"] = lines[-1] if lines else f"exit {proc.returncode}"
    return row


def run_target(row: dict[str, Any]) -> str:
    """The PASS/FAIL line of the memory target for one measured run."""
    if "error" in row:
        return f"FAIL  deflicker run peak memory <= {RUN_TARGET_MB:.0f} MB: the run failed ({row['error']})"
    ok = row["peak_mb"] <= RUN_TARGET_MB
    return (f"{'PASS' if ok else 'FAIL':<4}  deflicker run peak memory <= {RUN_TARGET_MB:.0f} MB at "
            f"{row['size']} x {row['frames']} frames: {row['peak_mb']:.0f} MB")


def run_run(args: argparse.Namespace, *, size: tuple[int, int], frames: int) -> int:
    """Make the clip, measure ``deflicker run`` on it, print the row and the target, write run.json."""
    with tempfile.TemporaryDirectory(prefix="deflicker-bench-run-") as tmp:
        folder = Path(tmp)
        print(f"run: writing {frames} frames of {size_label(size)} ...", file=sys.stderr, flush=True)
        src = write_photo_clip(folder / "input.mkv", size, frames, seed=args.seed)
        print("run: deflicker run ...", file=sys.stderr, flush=True)
        row = {"size": size_label(size), "frames": frames,
               **measure_run(src, folder / "output.mkv", folder / "cache")}
    target = run_target(row)
    write_json(args.out / "run.json", {"suite": "run", "row": row, "target": target})
    print(text_table(("size", "frames", "peak MB", "seconds"),
                     [[row["size"], frames, row.get("peak_mb"), row.get("seconds")]], ("", "", ".0f", ".1f")))
    print("\nTARGETS (issue 16)\n" + target)
    return 0
