"""`deflicker run` end to end on real files, and its error paths."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deflicker.cli import main
from deflicker.io import open_clip, write_clip
from tests._clips import flicker_clip

FAST = ["--analysis-size", "64"]


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory) -> Path:
    _, noisy = flicker_clip(n=10)
    path = tmp_path_factory.mktemp("clips") / "in.mkv"
    write_clip(path, noisy, fps=25.0, bit_depth=16, codec="ffv1")
    return path


def test_run_writes_output_and_report(clip_file, tmp_path, capsys):
    out = tmp_path / "out.mkv"
    png = tmp_path / "report.png"
    assert main(["run", str(clip_file), "-o", str(out), "--report", str(png), *FAST]) == 0
    with open_clip(clip_file) as src, open_clip(out) as dst:
        assert len(dst) == len(src)
        assert dst.info.fps == pytest.approx(src.info.fps)
        assert dst.info.bit_depth == src.info.bit_depth
        before = np.array([src[t].mean() for t in range(len(src))])
        after = np.array([dst[t].mean() for t in range(len(dst))])
    assert np.abs(np.diff(after)).mean() < 0.5 * np.abs(np.diff(before)).mean()
    assert png.stat().st_size > 10_000


def test_run_frame_range_and_alpha_sequence(tmp_path):
    _, noisy = flicker_clip(n=10, alpha=True)
    src = tmp_path / "seq" / "f.%04d.png"
    src.parent.mkdir()
    write_clip(src, noisy, fps=24.0, bit_depth=16)
    out = tmp_path / "out" / "o.%04d.png"
    out.parent.mkdir()
    assert main(["run", str(src), "-o", str(out), "--frames", "2:8", *FAST]) == 0
    with open_clip(out) as dst, open_clip(src, start=2, end=8) as ref:
        assert len(dst) == 6
        for t in range(6):
            assert np.array_equal(dst[t][..., 3], ref[t][..., 3])


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deflicker", *args], capture_output=True, text=True)


@pytest.mark.parametrize("case, code", [("missing", 3), ("unwritable", 3), ("refusing", 3), ("report", 3), ("same", 3),
                                        ("strength", 2), ("range", 2), ("empty", 3), ("keep-slow", 2),
                                        ("keep-slow-long", 2)])
def test_run_errors_are_one_line(case, code, clip_file, tmp_path):
    out = str(tmp_path / "o.mkv")
    args = {
        "missing": ["run", str(tmp_path / "nope.mp4"), "-o", out],
        "unwritable": ["run", str(clip_file), "-o", str(clip_file) + "/sub/o.mkv"],
        "refusing": ["run", str(clip_file), "-o", "/proc/o.mkv"],  # mode bits say writable to root
        "report": ["run", str(clip_file), "-o", out, "--report", "/proc/r.png"],  # refused before the render
        "same": ["run", str(clip_file), "-o", str(clip_file)],
        "strength": ["run", str(clip_file), "-o", out, "--strength", "2"],
        "range": ["run", str(clip_file), "-o", out, "--frames", "5:3"],
        "keep-slow": ["run", str(clip_file), "-o", out, "--keep-slow", "-2"],
        "keep-slow-long": ["run", str(clip_file), "-o", out, "--keep-slow", "5000"],
        "empty": ["run", str(tmp_path), "-o", out],
    }[case]
    proc = _run_cli(*args, *FAST)
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert lines and "Traceback" not in proc.stderr
    assert lines[-1].startswith(("deflicker: error:", "deflicker run: error:"))  # ours, or argparse's usage error
    if case in ("refusing", "report"):
        assert lines[-1].startswith("deflicker: error: cannot write /proc/")
        assert len(lines) == 1  # refused before any work: no progress bar either
    assert not Path(out).exists()
    assert clip_file.stat().st_size > 0
