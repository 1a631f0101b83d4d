"""The README's main command: deflicker the bundled sample clip through the real OFX plugin.

``python -m deflicker.cli.demo --bundle build/Deflicker.ofx.bundle --out out`` renders
``samples/flicker_sample.mkv`` with the C++ test host (which loads the bundle like Resolve or
Nuke would), then writes a before/after plot next to the result.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

from deflicker.errors import DeflickerError, VideoIOError
from deflicker.io.atomic import output_folder
from deflicker.progress import Progress, report

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "samples" / "flicker_sample.mkv"


def render_through_plugin(host: Path, bundle: Path, src: Path, dst: Path, progress: Optional[Progress] = None) -> int:
    """Run ``ofxhost render BUNDLE SRC -o DST``; returns the frames rendered.

    ``progress`` follows the host's events: the analysis (inside the first Render, through the
    host's progress suite) is the first half, the renders the second. Raises VideoIOError with
    the host's last error line when it fails.
    """
    if not host.exists():
        raise VideoIOError(f"test host not built: {host} (run 'make bundle')")
    if not bundle.exists():
        raise VideoIOError(f"plugin bundle not built: {bundle} (run 'make bundle')")
    total = rendered = 0
    with tempfile.TemporaryFile("w+") as errors:
        with subprocess.Popen([str(host), "render", str(bundle), str(src), "-o", str(dst)], text=True,
                              stdout=subprocess.PIPE, stderr=errors) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:  # one JSON event per line
                event = json.loads(line) if line.startswith("{") else {}
                kind = event.get("event")
                if kind == "clip":
                    total = int(event["frames"])
                elif kind == "progress" and event.get("what") == "update" and rendered == 0:
                    report(progress, 0.5 * float(event["value"]), "analysing the clip (first render)")
                elif kind == "render" and event.get("status") == 0:
                    rendered += 1
                    report(progress, 0.5 + 0.5 * rendered / max(1, total), f"frame {rendered}/{total}")
        errors.seek(0)
        last = (errors.read().strip().splitlines() or ["no message"])[-1]
    if proc.returncode != 0:
        raise VideoIOError(f"ofxhost failed ({proc.returncode}): {last}")
    return rendered


def plot(src: Path, dst: Path, png: Path) -> Path:
    """Before/after brightness curves and thumbnails of two clips of equal length."""
    from deflicker.io.files import open_clip
    from deflicker.io.source import file_pixels
    from deflicker.cli.report import ReportCollector

    with open_clip(src) as before, open_clip(dst) as after:
        if len(before) != len(after):
            raise VideoIOError(f"{dst} has {len(after)} frames, {src} has {len(before)}")
        collector = ReportCollector(len(before))
        for t in range(len(before)):
            collector.add(t, file_pixels(before, t), file_pixels(after, t))
    return collector.save(png, title=src.name)


def main(argv: list[str] | None = None) -> int:
    """Render the sample through the plugin and plot it; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m deflicker.cli.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "build" / "Deflicker.ofx.bundle")
    parser.add_argument("--host", type=Path, default=ROOT / "build" / "tests" / "host" / "ofxhost")
    parser.add_argument("--input", type=Path, default=SAMPLE)
    parser.add_argument("--out", type=Path, default=ROOT / "out")
    args = parser.parse_args(argv)
    from deflicker.cli.main import tqdm_progress

    progress, close = tqdm_progress("deflicker (OFX plugin)")
    try:
        output_folder(args.out)
        result = args.out / f"{args.input.stem}_deflickered.mkv"
        frames = render_through_plugin(args.host, args.bundle, args.input, result, progress)
        close()
        png = plot(args.input, result, args.out / f"{args.input.stem}_before_after.png")
    except DeflickerError as exc:
        close()
        print(f"deflicker demo: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"deflickered {frames} frames through the OFX plugin: {result}")
    print(f"before/after plot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
