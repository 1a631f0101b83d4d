"""`deflicker run` end to end on real files, and its error paths."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deflicker.cli.main import main
from deflicker.io.files import open_clip, write_clip
from deflicker.io.image_file import read_image
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


def test_the_report_decodes_no_frame_of_its_own(clip_file, tmp_path, monkeypatch):
    """The report reads a frame's input in the render worker just before the render reads it:
    with a cache of a few frames (a 4K clip's five) and one worker (a fixed order of reads), a
    run with --report decodes the same frames as a run without. The main thread used to read
    each input again after the workers had moved on, decoding most frames twice (5 minutes more
    at 4K from a file with a keyframe every 12 frames)."""
    from deflicker import Engine, Settings, render_queue
    from deflicker.engine import process
    from deflicker.io import clip as clip_module
    from deflicker.io.video import VideoClip

    monkeypatch.setattr(clip_module, "CACHE_BYTES", 4 * 48 * 64 * 3 * 2)  # four of its 16-bit frames
    monkeypatch.setattr(render_queue, "render_workers", lambda: 1)
    engine = Engine(Settings(analysis_size=64), cache_dir=tmp_path / "cache")
    process(engine, clip_file, tmp_path / "warm.mkv")  # the analysis, cached: not counted
    decoded: list[int] = []
    read = VideoClip._read

    def counted(self: VideoClip, index: int) -> np.ndarray:
        decoded.append(index)
        return read(self, index)

    monkeypatch.setattr(VideoClip, "_read", counted)
    runs = {}
    for report in (None, tmp_path / "report.png"):
        decoded.clear()
        process(engine, clip_file, tmp_path / f"{report is not None}.mkv", report=report)
        runs[report is not None] = list(decoded)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert runs[True] == runs[False], str(runs)


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


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every entry under ``folder`` (and the folder itself): bytes of files and mode, by relative path."""
    entries = {".": (b"", folder.stat().st_mode)}
    entries.update({str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mode)
                    for p in folder.rglob("*")})
    return entries


def _refused(capsys: pytest.CaptureFixture, *args: str) -> str:
    """The one stderr line of ``deflicker run ARGS`` refused with exit 3 before any work (no progress bar)."""
    capsys.readouterr()
    assert main(["run", *args, *FAST]) == 3
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_run_into_a_folder_of_other_files_leaves_them_byte_identical(clip_file, tmp_path, capsys):
    folder = tmp_path / "shots"
    (folder / "sub").mkdir(parents=True)
    folder.chmod(0o751)
    (folder / "grade.cdl").write_text("<ColorDecisionList/>")
    (folder / "sub" / "ref.png").write_bytes(b"not mine")
    before = _snapshot(folder)
    assert _refused(capsys, str(clip_file), "-o", str(folder)) == (f"deflicker: error: refusing to write into {folder}: it is not empty "
                                     "(2 entries); pass --overwrite to write the frames there (other files are kept)")
    assert _snapshot(folder) == before
    assert main(["run", str(clip_file), "-o", str(folder), "--overwrite", *FAST]) == 0
    after = _snapshot(folder)
    assert {name: after[name] for name in before} == before  # same bytes, same modes, folder's mode too
    assert sorted(set(after) - set(before)) == [f"frame.{n:06d}.png" for n in range(10)]
    with open_clip(folder / "frame.%06d.png") as out:
        assert len(out) == 10 and out.info.bit_depth == 16


@pytest.fixture(scope="module")
def plate(tmp_path_factory) -> Path:
    """A 10-frame flickering plate numbered 1001 to 1010."""
    import cv2

    _, noisy = flicker_clip(n=10)
    path = tmp_path_factory.mktemp("plate") / "plate.%04d.png"
    for n, frame in enumerate(noisy, start=1001):  # as a compositing package writes them
        pixels = np.rint(np.clip(frame, 0, 1) * 65535).astype(np.uint16)
        assert cv2.imwrite(str(path.parent / f"plate.{n}.png"), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    return path


def test_a_plate_keeps_its_frame_numbers_and_other_frames_are_never_touched(plate, tmp_path, capsys):
    renders = tmp_path / "renders"
    renders.mkdir()
    for n in range(1001, 1013):
        (renders / f"shot.{n}.png").write_bytes(b"earlier render %d" % n)
    before = _snapshot(renders)
    pattern = str(renders / "shot.%04d.png")
    assert _refused(capsys, str(plate), "-o", pattern) == (f"deflicker: error: refusing to replace 10 existing frames (shot.1001.png to "
                                     f"shot.1010.png) in {renders}; pass --overwrite to replace them")
    assert _snapshot(renders) == before
    assert main(["run", str(plate), "-o", pattern, "--frames", "1003:1008", "--overwrite", *FAST]) == 0
    after = _snapshot(renders)
    assert sorted(name for name in after if after[name] != before.get(name)) == [
        f"shot.{n}.png" for n in range(1003, 1008)]
    for n in range(1003, 1008):  # real 16-bit frames of the plate's size
        pixels = read_image(renders / f"shot.{n}.png")
        assert pixels.shape == (48, 64, 3) and pixels.dtype == np.uint16
    folder = tmp_path / "graded"
    assert main(["run", str(plate), "-o", str(folder), "--frames", "1009:1011", *FAST]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["frame.001009.png", "frame.001010.png"]


@pytest.mark.parametrize("output, message", [
    ("o.xyz", "unknown output type '.xyz'"),
    ("o.png", "needs a frame-number pattern"),
    ("Take #3.%04d.png", "2 frame-number fields"),
    ("o.%04d.%04d.png", "2 frame-number fields"),
    ("o.%5s.png", "%5s is not a frame-number field"),
])
def test_run_refuses_every_output_error_before_any_work(clip_file, tmp_path, capsys, output, message):
    cache = tmp_path / "cache"
    assert message in _refused(capsys, str(clip_file), "-o", str(tmp_path / output), "--cache-dir", str(cache))
    assert not cache.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_run_reads_and_writes_names_with_hash_and_percent(clip_file, tmp_path, capsys):
    take = tmp_path / "Take #3.mkv"
    take.write_bytes(clip_file.read_bytes())
    done = tmp_path / "100%done.mkv"
    assert main(["run", str(take), "-o", str(done), *FAST]) == 0
    with open_clip(done) as out:
        assert len(out) == 10
    written = done.read_bytes()
    assert _refused(capsys, str(take), "-o", str(done)) == (
        f"deflicker: error: refusing to replace the existing {done}; pass --overwrite to replace it")
    report = tmp_path / "report.png"
    report.write_bytes(b"an earlier report")
    assert "existing" in _refused(capsys, str(take), "-o", str(tmp_path / "new.mkv"), "--report", str(report))
    assert done.read_bytes() == written and report.read_bytes() == b"an earlier report"
    assert not (tmp_path / "new.mkv").exists()
