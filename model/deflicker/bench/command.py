"""``deflicker bench [quality|speed|flow|plugin|segments|run]``: the benchmarks behind the issues' targets.

- ``quality`` (default): every method (raw, clean, ffmpeg, the engine's stages) on every
  synthetic clip in one process; one table per clip and per flicker family, ``bench.json``,
  ``bench.md``, ``brightness_<clip>.png``, then the targets with PASS/FAIL.
- ``speed``: analysis and render seconds per frame and peak memory at 1080p and 4K, for 100
  and 1000 frames (``--frames``, ``--sizes``), with ``--flow`` also the flow benchmark.
- ``flow``: DIS flow end-point error against the exact flow, with and without brightness
  normalization.
- ``plugin``: the OFX plugin's per-frame overhead over the engine (``deflicker.bench.plugin``).
- ``segments``: frames read and time to the first frame of a 200- and a 2000-frame clip
  (``--frames SHORT,LONG``) through the plugin's model server (``deflicker.bench.segments``).
- ``run``: peak memory of an end-to-end ``deflicker run`` (``--size``, default 4K, and
  ``--run-frames``, default 40) against issue 16's 2 GB (``deflicker.bench.run``).

The benchmark reports; it exits 0 whether targets pass or fail.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import Any

from deflicker.bench.common import parse_int_list, size_label, write_json, write_text
from deflicker.bench.methods import METHODS
from deflicker.errors import InvalidSettingsError
from deflicker.io.atomic import output_folder
from deflicker.settings import ANALYSIS_SIZE_RANGE, parse_size

log = logging.getLogger(__name__)

SUITES = ("quality", "speed", "flow", "plugin", "segments", "run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``deflicker bench``."""
    parser.add_argument("suite", nargs="?", default="quality", choices=SUITES, help="which benchmark (default quality)")
    parser.add_argument("--out", type=Path, default=Path("out/bench"), help="folder for bench.json, bench.md, plots")
    parser.add_argument("--data", type=Path, default=None, help="clips written by `deflicker synth` (default: generate)")
    parser.add_argument("--size", default=None,
                        help="WxH of generated clips (quality/flow 128x96; plugin 1080p; run 4k)")
    parser.add_argument("--frames", default=None,
                        help="frames per clip (quality/flow/plugin 24); speed: comma list (default 100,1000)")
    parser.add_argument("--long-frames", type=int, default=600, help="frames of the long-drift clip, 0 skips it "
                        "(default 600)")
    parser.add_argument("--only", default=None, help="comma-separated clip names or name prefixes (global, global_w1)")
    parser.add_argument("--methods", default=None, help=f"comma-separated, of {', '.join(METHODS)} "
                        "(default: every available one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic set")
    parser.add_argument("--analysis-size", type=int, default=256, help="engine proxy long side (clamped to 64..1024)")
    parser.add_argument("--ffmpeg-filter", default=None, help="ffmpeg -vf of the ffmpeg method")
    parser.add_argument("--sizes", default="1080p,4k", help="speed: comma list of sizes (1080p, 4k, WxH)")
    parser.add_argument("--render-frames", type=int, default=5, help="speed: frames timed for render per size")
    parser.add_argument("--flow", action="store_true", help="speed: also run the flow benchmark")
    parser.add_argument("--run-frames", type=int, default=40, help="run: frames of the clip (default 40)")


def _analysis_size(value: int) -> int:
    low, high = ANALYSIS_SIZE_RANGE
    clamped = min(high, max(low, int(value)))
    if clamped != value:
        log.warning("analysis size %d clamped to %d", value, clamped)
    return clamped


def _frames(args: argparse.Namespace, default: int) -> int:
    if args.frames is None:
        return default
    values = parse_int_list(args.frames, "--frames", minimum=2)
    if len(values) != 1:
        raise InvalidSettingsError(f"--frames takes one number for the {args.suite} suite, not {args.frames!r}")
    return values[0]


def run_command(args: argparse.Namespace) -> int:
    """Run the chosen suite; 0 whatever the targets say (2 bad options, 3 missing plugin)."""
    if args.long_frames != 0 and args.long_frames < 2:
        raise InvalidSettingsError(f"--long-frames must be 0 or at least 2, not {args.long_frames}")
    args.analysis_size = _analysis_size(args.analysis_size)
    output_folder(args.out)
    if args.suite == "quality":
        return _quality(args)
    if args.suite == "speed":
        from deflicker.bench.speed import run_speed

        code = run_speed(args, sizes=[parse_size(s) for s in args.sizes.split(",") if s.strip()],
                         frame_counts=parse_int_list(args.frames or "100,1000", "--frames", minimum=2))
        return code if code or not args.flow else _flow(args)
    if args.suite == "flow":
        return _flow(args)
    if args.suite == "segments":
        from deflicker.bench.segments import run_segments

        short, long = parse_int_list(args.frames or "200,2000", "--frames", minimum=2)[:2]
        run_segments(args.out, short=short, long=long, size=parse_size(args.size or "128x96"),
                     analysis_size=min(args.analysis_size, 128))
        return 0
    if args.suite == "run":
        from deflicker.bench.run import run_run

        if args.run_frames < 2:
            raise InvalidSettingsError(f"--run-frames must be at least 2, not {args.run_frames}")
        return run_run(args, size=parse_size(args.size or "4k"), frames=args.run_frames)
    return _plugin(args)


def _quality(args: argparse.Namespace) -> int:
    from deflicker.bench.methods import FFMPEG_FILTER, BenchContext, resolve_methods
    from deflicker.bench.quality import iter_clips, render_markdown, render_text, run_quality
    from deflicker.bench.targets import check_targets, targets_json, targets_markdown, targets_text
    from deflicker.settings import Settings

    methods = resolve_methods(args.methods)
    size = parse_size(args.size or "128x96")
    frames = _frames(args, 24)
    names, clips = iter_clips(data=args.data, size=size, frames=frames, long_frames=args.long_frames,
                              seed=args.seed, only=args.only)
    settings: dict[str, Any] = {"size": size_label(size), "frames": frames, "long_frames": args.long_frames,
                                "seed": args.seed, "analysis_size": args.analysis_size,
                                "ffmpeg_filter": args.ffmpeg_filter or FFMPEG_FILTER,
                                "data": str(args.data) if args.data else None}
    with tempfile.TemporaryDirectory(prefix="deflicker-bench-cache-") as cache:
        context = BenchContext(settings=Settings(analysis_size=args.analysis_size), cache_dir=Path(cache),
                               ffmpeg_filter=settings["ffmpeg_filter"])
        results = run_quality(names, clips, methods, context, args.out, settings)
    targets = check_targets(results)
    results["targets"] = targets_json(targets)
    write_json(args.out / "bench.json", results)
    write_text(args.out / "bench.md", render_markdown(results, targets_markdown(targets)))
    print(render_text(results))
    print("\nTARGETS (issues 3, 4 and 13)")
    print(targets_text(targets))
    print(f"\nwrote {args.out / 'bench.json'}, {args.out / 'bench.md'} and {len(results['clips'])} brightness plots")
    return 0


def _flow(args: argparse.Namespace) -> int:
    from deflicker.bench.flow import run_flow

    frames = 24 if args.suite == "speed" else _frames(args, 24)  # speed's --frames are clip lengths
    return run_flow(args, size=parse_size(args.size or "128x96"), frames=frames)


def _plugin(args: argparse.Namespace) -> int:
    import importlib

    try:
        bench_plugin = importlib.import_module("deflicker.bench.plugin")
    except ModuleNotFoundError as exc:
        if exc.name != "deflicker.bench.plugin":
            raise
        print("deflicker: plugin benchmark unavailable: deflicker.bench.plugin is not installed")
        return 3
    size = parse_size(args.size or "1080p")
    frames = _frames(args, 24)
    try:
        figures = bench_plugin.run(args.out, frames=frames, size=size)
    except FileNotFoundError as exc:
        print(f"deflicker: plugin benchmark unavailable: {exc} (build it with `make bundle`)")
        return 3
    from deflicker.bench.common import text_table

    rows = [[k, float(v)] for k, v in figures.items()]
    print(text_table(("plugin figure", "value"), rows))
    overhead = figures.get("overhead")
    if overhead is not None:
        status = "PASS" if float(overhead) < 0.10 else "FAIL"
        print(f"\nTARGETS (issue 5)\n{status:<4}  plugin overhead over the engine at {size_label(size)} < 10%: "
              f"{100 * float(overhead):.1f}%")
    write_json(args.out / "plugin.json", {"suite": "plugin", "size": size_label(size), "frames": frames,
                                          "figures": {k: float(v) for k, v in figures.items()}})
    return 0
