"""`deflicker bench`: the quality table and its files, the method registry, ffmpeg, the speed,
flow and plugin suites, and the targets logic; all at tiny sizes."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from deflicker.bench.common import PeakMemory
from deflicker.settings import parse_size
from deflicker.bench.methods import run_ffmpeg_filter
from deflicker.bench.targets import check_targets, removed_fraction
from deflicker.cli.main import main
from deflicker.errors import InvalidSettingsError

TINY = ["--size", "64x48", "--frames", "8", "--long-frames", "12"]
CLIPS = "global_w1,processed_clahe"  # prefixes: clip names end in their photo
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quality(tmp_path_factory) -> tuple[Path, str, dict]:
    """One tiny quality run with raw, clean, look and ffmpeg: (out dir, stdout, bench.json)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("bench")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["bench", "--out", str(out), *TINY, "--only", CLIPS, "--methods", "raw,clean,look,ffmpeg"])
    assert code == 0
    return out, buf.getvalue(), json.loads((out / "bench.json").read_text())


def _row(results: dict, clip: str, method: str) -> dict:
    entry = next(e for e in results["clips"] if e["name"].startswith(clip + "_"))
    return entry["rows"][method]


def test_quality_writes_table_json_markdown_and_plots(quality):
    out, text, results = quality
    names = [e["name"] for e in results["clips"]]
    assert [n.rsplit("_", 1)[0] for n in names] == CLIPS.split(",")
    header = text.splitlines()[0].split()
    assert header[:3] == ["clip", "method", "Ewarp"] and "TARGETS" in text
    for clip in names:
        assert clip in text
        png = out / f"brightness_{clip}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC
    assert "[global]" in text and "[processed]" in text and "[all]" in text
    md = (out / "bench.md").read_text()
    assert f"| {names[0]} | raw (input) |" in md and "## Targets" in md
    assert set(results["families"]) == {"global", "processed", "all"}


def test_raw_is_the_reference_and_clean_scores_the_floor(quality):
    _, _, results = quality
    for entry in results["clips"]:
        raw, clean = entry["rows"]["raw"], entry["rows"]["clean"]
        assert raw["ratio_raw"] == 1.0
        assert clean["ewarp"] == entry["floor"] and clean["ratio_floor"] == 1.0
        assert raw["ewarp"] == entry["raw_ewarp"]
    raw = _row(results, "global_w1", "raw")
    assert raw["ratio_floor"] > 5.0  # raw is far above the floor
    assert _row(results, "processed_clahe", "raw")["psnr"] is None  # inf (PSNR to itself) is null in JSON


def test_look_row_only_on_processed_clips(quality):
    _, text, results = quality
    assert "look" not in next(e for e in results["clips"] if e["family"] == "global")["rows"]
    look, raw = _row(results, "processed_clahe", "look"), _row(results, "processed_clahe", "raw")
    assert 0 < look["ewarp"] < raw["ewarp"] and look["psnr"] > 15.0  # consistent, and the processed look
    assert "look (flicker-free look)" in text
    assert results["families"]["processed"]["look"]["clips"] == 1
    assert "look" not in results["families"]["all"]  # a mean over the processed clips only would mislead


def test_ffmpeg_runs_for_real_and_changes_the_result(quality):
    _, _, results = quality
    raw, ff = _row(results, "global_w1", "raw"), _row(results, "global_w1", "ffmpeg")
    assert math.isfinite(ff["ewarp"]) and ff["ewarp"] != raw["ewarp"]
    assert ff["ewarp"] < raw["ewarp"]  # it does remove part of a global flicker
    assert ff["seconds_per_frame"] > 0 and ff["peak_mb"] > 0  # ffmpeg's own memory is counted


def test_ffmpeg_filter_evens_out_global_gain():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.6, (24, 32, 3)).astype(np.float32)
    gains = rng.uniform(0.7, 1.3, 12).astype(np.float32)
    frames = np.stack([base * g for g in gains])
    out = run_ffmpeg_filter(frames, "deflicker=size=5:mode=pm")
    assert out.shape == frames.shape and out.dtype == np.float32
    assert out.mean(axis=(1, 2, 3)).std() < 0.6 * frames.mean(axis=(1, 2, 3)).std()


def test_targets_report_without_failing_the_run(quality):
    _, text, results = quality
    lines = [ln for ln in text.split("TARGETS", 1)[1].splitlines() if ln[:4] in ("PASS", "FAIL", "SKIP")]
    assert len(lines) == len(results["targets"]) >= 8
    assert all(t["status"] == "SKIP" for t in results["targets"])  # no 'full' in this run


def test_engine_method_row(tmp_path, capsys):
    code = main(["bench", "--out", str(tmp_path), *TINY, "--only", "global_w1", "--methods", "raw,full",
                 "--analysis-size", "64"])
    assert code == 0
    results = json.loads((tmp_path / "bench.json").read_text())
    full = _row(results, "global_w1", "full")
    assert "error" not in full, full
    assert full["analysis_seconds"] > 0 and full["seconds_per_frame"] > full["analysis_seconds"] / 8
    assert full["ewarp"] < _row(results, "global_w1", "raw")["ewarp"]
    assert "full" in results["clips"][0]["brightness"]


def test_bench_reads_clips_written_by_synth(tmp_path, capsys):
    from deflicker.synth.clips import clip_names

    name = next(n for n in clip_names(long_frames=0) if n.startswith("global_w3_"))
    data = tmp_path / "clips"
    assert main(["synth", str(data), "--size", "64x48", "--frames", "8", "--long-frames", "0", "--only", name]) == 0
    assert main(["bench", "--data", str(data), "--out", str(tmp_path / "b"), "--methods", "raw,clean"]) == 0
    results = json.loads((tmp_path / "b" / "bench.json").read_text())
    entry = results["clips"][0]
    assert entry["name"] == name and entry["frames"] == 8
    assert entry["rows"]["clean"]["ewarp"] == entry["floor"] < entry["raw_ewarp"]


@pytest.mark.parametrize("argv, word", [
    (["--methods", "raw,nope"], "nope"),
    (["--only", "no_such_clip"], "no_such_clip"),
    (["--size", "64by48"], "64by48"),
])
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, argv, word):
    assert main(["bench", "--out", str(tmp_path), *TINY[2:], *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and word in err and "Traceback" not in err


@pytest.mark.parametrize("suite", ["quality", "speed", "flow", "plugin", "run"])
def test_an_output_folder_that_refuses_files_is_refused_before_any_work(capsys, suite):
    # /proc: the mode bits say writable to root, yet no file can be made there
    assert main(["bench", suite, "--out", "/proc/deflicker-bench", *TINY]) == 3
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith("deflicker: error: cannot write /proc/deflicker-bench")


def test_speed_suite_at_a_tiny_size(tmp_path, capsys):
    assert main(["bench", "speed", "--sizes", "64x48", "--frames", "8,16", "--render-frames", "2",
                 "--analysis-size", "64", "--out", str(tmp_path), "--flow", "--only", "global_w1", "--size", "64x48"]) == 0
    text = capsys.readouterr().out
    rows = json.loads((tmp_path / "speed.json").read_text())["rows"]
    assert [r["frames"] for r in rows] == [8, 16] and all("error" not in r for r in rows), rows
    assert rows[0]["render_seconds_per_frame"] > 0 and "render_seconds_per_frame" not in rows[1]
    assert rows[0]["queue_seconds_per_frame"] >= rows[0]["queue_net_seconds_per_frame"] > 0
    runs = rows[0]["queue_net_runs"]
    assert len(runs) == 3 and runs == sorted(runs) and rows[0]["queue_net_seconds_per_frame"] == runs[1]  # the median
    assert all(r["analysis_seconds_per_frame"] > 0 and r["rss_mb"] > r["peak_mb"] >= 0 for r in rows)
    assert sum(ln.startswith("64x48") for ln in text.splitlines()) == 2
    assert "linear growth at 64x48" in text and "SKIP  render queue at 1080p" in text
    assert (tmp_path / "flow.json").exists() and "brightness normalization" in text  # --flow


def test_speed_targets_judge_the_median_ratio_and_show_the_runs_extremes():
    from deflicker.bench.speed import speed_targets

    def row(h, w, runs):
        return {"height": h, "width": w, "frames": 100, "analysis_seconds_per_frame": 0.2, "peak_mb": 1.0,
                "rss_mb": 2.0, "render_net_seconds_per_frame": 0.5, "queue_seconds_per_frame": runs[1] + 0.01,
                "queue_net_seconds_per_frame": runs[1], "queue_net_runs": runs}

    lines = speed_targets([row(1080, 1920, [0.10, 0.12, 0.13]), row(2160, 3840, [0.27, 0.288, 0.33])])
    line = next(ln for ln in lines if "render 4K / 1080p" in ln)
    assert line.startswith("PASS") and "2.40x" in line and "extremes 2.08-3.30x" in line, line
    lines = speed_targets([row(1080, 1920, [0.10, 0.12, 0.13]), row(2160, 3840, [0.29, 0.31, 0.33])])
    assert next(ln for ln in lines if "render 4K / 1080p" in ln).startswith("FAIL")  # 2.58x


def test_run_suite_measures_a_real_deflicker_run_into_each_output(tmp_path):
    from deflicker.bench.run import OUTPUTS

    # in a fresh process: a child's peak includes its parent's (the floor), and pytest's is large
    proc = subprocess.run([sys.executable, "-m", "deflicker", "bench", "run", "--size", "64x48", "--run-frames", "6",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    report = json.loads((tmp_path / "run.json").read_text())
    rows = report["rows"]
    assert [r["output"] for r in rows] == [label for label, _ in OUTPUTS]
    for row in rows:
        assert row["returncode"] == 0 and "error" not in row, row
        # Python with numpy and torch loaded, far below the target; the reader and writer alone load no torch
        assert 50 < row["io_peak_mb"] < row["peak_mb"] < 2048 and report["floor_mb"] > 50
        assert f"PASS  deflicker run peak memory <= 2048 MB at 64x48 x 6 frames into {row['output']}" in text


def test_copy_clip_writes_the_input_unchanged(tmp_path):
    from deflicker.bench.run import copy_clip, write_photo_clip
    from deflicker.io.files import open_clip

    src = write_photo_clip(tmp_path / "in.mkv", (48, 64), 3)
    copy_clip(str(src), str(tmp_path / "seq" / "f.%04d.tif"))
    with open_clip(src) as a, open_clip(tmp_path / "seq" / "f.%04d.tif") as b:
        assert len(b) == 3 and b.info.bit_depth == 16
        for t in range(3):
            np.testing.assert_array_equal(a[t], b[t])


def test_run_target_fails_above_2_gb_and_on_errors():
    from deflicker.bench.run import run_target

    row = {"size": "4K", "frames": 40, "output": "tif 16-bit", "peak_mb": 2100.0, "io_peak_mb": 600.0}
    assert run_target(row).startswith("FAIL") and "2100 MB" in run_target(row) and "600 MB" in run_target(row)
    assert run_target({**row, "peak_mb": 1900.0}).startswith("PASS")
    assert run_target({**row, "error": "boom"}).startswith("FAIL")


def test_flow_suite(tmp_path, capsys):
    assert main(["bench", "flow", *TINY, "--only", "global_w1", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    results = json.loads((tmp_path / "flow.json").read_text())
    row = results["clips"][0]
    assert all(math.isfinite(row[k]) and row[k] >= 0 for k in ("epe_clean", "epe_plain", "epe_normalized"))
    assert "brightness normalization" in text and row["name"] in text


def test_plugin_suite_missing_module_exits_3(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "deflicker.bench.plugin", None)
    assert main(["bench", "plugin", "--out", str(tmp_path)]) == 3
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1 and "bench.plugin" in out


def _fake_plugin(monkeypatch, run) -> None:
    module = types.ModuleType("deflicker.bench.plugin")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "deflicker.bench.plugin", module)


def test_plugin_suite_missing_bundle_exits_3(tmp_path, capsys, monkeypatch):
    def run(out_dir, *, frames, size):
        raise FileNotFoundError("build/Deflicker.ofx.bundle not found")

    _fake_plugin(monkeypatch, run)
    assert main(["bench", "plugin", "--out", str(tmp_path)]) == 3
    assert "Deflicker.ofx.bundle" in capsys.readouterr().out


def test_plugin_suite_prints_figures(tmp_path, capsys, monkeypatch):
    seen = {}

    def run(out_dir, *, frames, size):
        seen.update(frames=frames, size=size)
        return {"engine_seconds_per_frame": 0.2, "plugin_seconds_per_frame": 0.21, "overhead": 0.05}

    _fake_plugin(monkeypatch, run)
    assert main(["bench", "plugin", "--frames", "3", "--size", "64x48", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert seen == {"frames": 3, "size": (48, 64)}
    assert "plugin_seconds_per_frame" in text and "PASS" in text and "5.0%" in text


def test_parse_size():
    assert parse_size("64x48") == (48, 64)
    assert parse_size("1080p") == (1080, 1920) and parse_size("4K") == (2160, 3840)
    with pytest.raises(InvalidSettingsError):
        parse_size("huge")


def test_peak_memory_sees_numpy_allocations():
    with PeakMemory() as mem:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    assert mem.peak_mb > 48
    del block


def _entry(name: str, family: str, raw: float, floor: float, **ewarps: float) -> dict:
    rows = {m: {"ewarp": v, "ratio_floor": v / floor, "psnr": 30.0 if m == "full" else 20.0} for m, v in ewarps.items()}
    rows["raw"] = {"ewarp": raw, "ratio_floor": raw / floor, "psnr": 20.0}
    return {"name": name, "family": family, "raw_ewarp": raw, "floor": floor, "rows": rows,
            "target_is_clean": family != "processed"}


def test_targets_logic_on_known_numbers():
    clips = [_entry("global_w1_a", "global", 0.2, 0.01, full=0.012, ffmpeg=0.1, atlas=0.013),
             _entry("local_b", "local", 0.1, 0.01, full=0.05, ffmpeg=0.04)]
    assert removed_fraction(clips[0], "full") == pytest.approx((0.2 - 0.012) / 0.19)
    targets = check_targets({"clips": clips})

    def status(prefix: str) -> set[str]:
        return {t.status for t in targets if t.name.startswith(prefix)}

    assert status("paper protocol") == {"PASS"}  # 0.06x raw, 1.2x floor, +10 dB
    assert status("global clips") == {"PASS"}  # atlas 1.3x floor
    assert status("every clip") == {"FAIL"}  # local_b: worse than ffmpeg, only 56% removed
    assert status("clean-target clips") == {"PASS"}
    assert status("processed clips") == {"SKIP"}
    ffmpeg = next(t for t in targets if "Ewarp(full) < Ewarp(ffmpeg)" in t.name)
    assert "local_b" in ffmpeg.measured and "1/2 clips" in ffmpeg.measured


def test_removal_targets_name_the_flicker_free_looks_bound():
    detail = _entry("processed_detail_x", "processed", 0.04, 0.015, full=0.037, look=0.034)
    levels = _entry("processed_autolevels_y", "processed", 0.05, 0.005, full=0.008, look=0.007)
    targets = {t.name: t for t in check_targets({"clips": [detail, levels]})}
    removal = targets["processed clips: (raw - full) >= 0.6 (raw - floor)"]
    assert removal.status == "FAIL" and "1/2 clips pass" in removal.measured
    # the look removes (0.04 - 0.034) / 0.025 = 0.24 on the detail clip; full removes 0.5 of (raw - look)
    assert "processed_detail_x: the flicker-free look itself removes 0.240, full removes 0.500 of (raw - look)" \
        in removal.measured
    assert "processed_autolevels_y" not in removal.measured.split(";", 1)[1]  # its look reaches 0.6
    assert targets["every clip: (raw - full) >= 0.6 (raw - floor)"].measured == removal.measured


def test_film_targets_logic_on_known_numbers():
    gate = _entry("gate_letterbox_a", "gate", 0.1, 0.01, full=0.02, ffmpeg=0.05)
    film = _entry("oldfilm_b", "oldfilm", 0.2, 0.04, full=0.17, ffmpeg=0.1)
    for entry, ghost in ((gate, 0.5 / 255), (film, 3.0 / 255)):
        for name, row in entry["rows"].items():
            row.update(static=ghost if name == "full" else 0.0, detail=0.97, ratio_raw=row["ewarp"] / entry["raw_ewarp"])
    targets = {t.name: t for t in check_targets({"clips": [gate, film]})}
    static = targets["static regions: max |full - input| <= 1/255"]
    assert static.status == "FAIL" and "oldfilm_b" in static.measured and "1/2 clips pass" in static.measured
    assert targets["old film: Ewarp(full) <= 0.8x raw"].status == "FAIL"  # 0.85x raw
    assert targets["old film: Ewarp(full) < Ewarp(ffmpeg)"].status == "FAIL"
    assert targets["old film: detail kept(full) >= 0.95"].status == "PASS"
    film["rows"]["full"]["detail"] = 0.9
    assert {t.name: t for t in check_targets({"clips": [film]})}["old film: detail kept(full) >= 0.95"].status == "FAIL"


def test_film_families_print_raw_ffmpeg_ours_and_their_targets(tmp_path, capsys):
    code = main(["bench", "--out", str(tmp_path), "--size", "80x60", "--frames", "6", "--long-frames", "0",
                 "--only", "gate_letterbox,oldfilm_chelsea", "--methods", "raw,ffmpeg,full", "--analysis-size", "64"])
    assert code == 0
    text = capsys.readouterr().out
    assert "[gate]" in text and "[oldfilm]" in text and "static max" in text.splitlines()[0]
    results = json.loads((tmp_path / "bench.json").read_text())
    for entry in results["clips"]:
        assert set(entry["rows"]) == {"raw", "ffmpeg", "full"}
        assert entry["rows"]["raw"]["static"] == 0.0 and entry["rows"]["full"]["static"] <= 1.0 / 255
    status = {t["name"]: t["status"] for t in results["targets"]}
    assert status["static regions: max |full - input| <= 1/255"] == "PASS"
    assert status["old film: Ewarp(full) <= 0.8x raw"] == "PASS"
    assert status["old film: detail kept(full) >= 0.95"] == "PASS"


def test_fade_targets_measure_flicker_by_the_previous_frame_term(tmp_path, capsys):
    """A fade's truth changes from frame to frame: against frame 0 even the clean clip differs by
    the whole ramp. Its Ewarp targets compare Ewarp's previous-frame term (floor_prev,
    raw_ewarp_prev, each row's ewarp_prev); the other families keep the whole Ewarp."""
    code = main(["bench", "--out", str(tmp_path), "--size", "64x48", "--frames", "8", "--long-frames", "0",
                 "--only", "fade_black_w3,global_w1", "--methods", "raw,clean"])
    assert code == 0
    results = json.loads((tmp_path / "bench.json").read_text())
    fade = next(e for e in results["clips"] if e["family"] == "fade")
    other = next(e for e in results["clips"] if e["family"] == "global")
    assert fade["rows"]["clean"]["ewarp_prev"] == fade["floor_prev"]
    assert fade["rows"]["raw"]["ewarp_prev"] == fade["raw_ewarp_prev"]
    assert fade["floor_prev"] < 0.2 * fade["floor"]  # the rest is frame 0 against the whole ramp
    assert "floor_prev" not in other and "raw_ewarp_prev" not in other
    # An output that keeps the ramp and removes the flicker: its previous-frame term near the
    # truth's, its whole Ewarp above the input's and ffmpeg's (as measured on this clip at 128x96).
    for entry in (fade, other):
        prev, whole = entry["rows"]["clean"]["ewarp_prev"], entry["raw_ewarp"]
        entry["rows"]["full"] = {"ewarp": 1.2 * whole, "ewarp_prev": 1.1 * prev}
        entry["rows"]["ffmpeg"] = {"ewarp": 1.1 * whole, "ewarp_prev": 0.75 * entry["rows"]["raw"]["ewarp_prev"]}
    targets = {t.name: t for t in check_targets(results)}
    for name in ("every clip: Ewarp(full) < Ewarp(ffmpeg)", "every clip: (raw - full) >= 0.6 (raw - floor)"):
        assert targets[name].status == "FAIL" and "1/2 clips pass" in targets[name].measured, targets[name]
        assert other["name"] in targets[name].measured  # the fade passes; the global clip is held to its whole Ewarp
    assert removed_fraction(fade, "full") == pytest.approx(
        (fade["raw_ewarp_prev"] - 1.1 * fade["floor_prev"]) / (fade["raw_ewarp_prev"] - fade["floor_prev"]))
