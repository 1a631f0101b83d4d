"""``deflicker bench run``: peak memory of an end-to-end ``deflicker run`` (issue 16: at most
2 GB on 40 frames of 4K).

A clip of the speed benchmark's panned photo (:func:`deflicker.bench.speed.photo_source`) is
written as a 16-bit FFV1 ``.mkv``, then ``deflicker run`` deflickers it in a child process with
an empty analysis cache, so the analysis, the render and the writer are all measured, into each
of :data:`OUTPUTS`: a 16-bit FFV1 ``.mkv`` and a 16-bit TIFF sequence. The peak is the child's
own maximum resident set (``ru_maxrss`` from ``os.wait4``), the figure the issue's target is
about. Linux carries the parent's peak into a child's ``ru_maxrss`` (the child starts in the
parent's address space), so the clip is written by a child process too and this process stays
small; its own peak, the floor under every figure, is reported with them.

The baseline, measured in the same run: the same clip decoded and written to the same output
by the engine's reader and writer alone (:func:`copy_clip`), nothing between. The difference is
what the deflicker itself adds; the baseline is what the codec and the I/O take (FFmpeg 8's
FFV1 encoder alone reserves and touches about 1 GB for a 16-bit 4K packet).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Union

from deflicker.bench.common import size_label, text_table, write_json
from deflicker.errors import VideoIOError

#: Issue 16: peak resident memory of `deflicker run` on 40 frames of 4K.
RUN_TARGET_MB = 2048.0


def write_photo_clip(path: Union[str, Path], size: tuple[int, int], frames: int, seed: int = 0) -> Path:
    """The speed benchmark's panned photo, ``frames`` frames of ``size`` (h, w), as a 16-bit clip at ``path``."""
    from deflicker.bench.speed import photo_source
    from deflicker.io.files import write_clip

    source = photo_source(size, frames, seed=seed)
    return write_clip(path, (source[t].clip(0.0, 1.0) for t in range(frames)), fps=24.0, bit_depth=16)


#: (label, output path in the run's folder) of the outputs a run is measured into.
OUTPUTS = (("mkv ffv1 16-bit", "output.mkv"), ("tif 16-bit", "frames/out.%04d.tif"))


def copy_clip(src: str, dst: str) -> None:
    """Decode ``src`` and write it to ``dst`` with the engine's own reader and writer, nothing in
    between (the input's depth, timing and audio kept as a run keeps them): a run's I/O alone."""
    from deflicker.io.files import carried_over, open_clip, output_like, write_clip

    with open_clip(src) as clip:
        write_clip(dst, iter(clip), **(output_like(clip.info, dst) | carried_over(clip, dst)))


def measure_child(cmd: list[str]) -> dict[str, Any]:
    """Run ``cmd`` in a child process: its exit code, wall seconds and peak resident memory (MiB)."""
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


def measure_run(src: Path, dst: Path, cache_dir: Path) -> dict[str, Any]:
    """``deflicker run src -o dst`` with an empty cache, and ``src`` copied to ``dst`` by the
    reader and writer alone (:func:`copy_clip`), each in a child process: the run's exit code,
    seconds and peak (MiB), and the copy's peak as ``io_peak_mb``."""
    run = measure_child([sys.executable, "-m", "deflicker", "run", str(src), "-o", str(dst),
                         "--cache-dir", str(cache_dir), "--overwrite"])
    dst.parent.mkdir(parents=True, exist_ok=True)
    copy = measure_child([sys.executable, "-c", "import sys; from deflicker.bench.run import copy_clip; "
                        "copy_clip(*sys.argv[1:])", str(src), str(dst.with_name("copy-" + dst.name))])
    row = {**run, "io_peak_mb": copy["peak_mb"], "io_seconds": copy["seconds"]}
    if "error" in copy and "error" not in row:
        row["error"] = f"the reader and writer alone: {copy['error']}"
    return row


def run_target(row: dict[str, Any]) -> str:
    """The PASS/FAIL line of the memory target for one measured run."""
    what = f"deflicker run peak memory <= {RUN_TARGET_MB:.0f} MB"
    if "error" in row:
        return f"FAIL  {what}: the run failed ({row['error']})"
    ok = row["peak_mb"] <= RUN_TARGET_MB
    return (f"{'PASS' if ok else 'FAIL':<4}  {what} at {row['size']} x {row['frames']} frames into {row['output']}: "
            f"{row['peak_mb']:.0f} MB (the reader and writer alone: {row['io_peak_mb']:.0f} MB)")


def run_run(args: argparse.Namespace, *, size: tuple[int, int], frames: int) -> int:
    """Make the clip, measure ``deflicker run`` on it into each output, print the rows and the
    targets, write run.json."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="deflicker-bench-run-") as tmp:
        folder = Path(tmp)
        print(f"run: writing {frames} frames of {size_label(size)} ...", file=sys.stderr, flush=True)
        src = folder / "input.mkv"
        made = measure_child([sys.executable, "-c", "import sys; from deflicker.bench.run import write_photo_clip; "
                              "h, w, n, seed = map(int, sys.argv[2:]); write_photo_clip(sys.argv[1], (h, w), n, seed)",
                              str(src), *map(str, (*size, frames, args.seed))])
        if "error" in made:
            raise VideoIOError(f"cannot write the benchmark clip: {made['error']}")
        for label, name in OUTPUTS:
            print(f"run: deflicker run into {label} ...", file=sys.stderr, flush=True)
            rows.append({"size": size_label(size), "frames": frames, "output": label,
                         **measure_run(src, folder / name, folder / f"cache-{len(rows)}")})
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB
    targets = [run_target(row) for row in rows]
    write_json(args.out / "run.json", {"suite": "run", "rows": rows, "targets": targets, "floor_mb": floor})
    print(text_table(("size", "frames", "output", "peak MB", "I/O alone MB", "run - I/O MB", "seconds"),
                     [[r["size"], frames, r["output"], r.get("peak_mb"), r.get("io_peak_mb"),
                       r.get("peak_mb", 0.0) - r.get("io_peak_mb", 0.0), r.get("seconds")] for r in rows],
                     ("", "", "", ".0f", ".0f", ".0f", ".1f")))
    print(f"measurement floor (this process's peak, which every child's figure includes): {floor:.0f} MB")
    print("\nTARGETS (issue 16)\n" + "\n".join(targets))
    return 0
