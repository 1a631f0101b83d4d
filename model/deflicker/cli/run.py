"""``deflicker run INPUT -o OUTPUT``: analysis (cached), filter, refinement, write."""
from __future__ import annotations

import argparse
import logging
from typing import Optional

from deflicker.settings import METHODS, DEVICES, MIN_SEGMENT_FRAMES, Settings

log = logging.getLogger(__name__)

FRAMES_HELP = ("frame numbers START:END, END exclusive: an image sequence's own numbers "
               "(1001:1101 for a plate from 1001), a video's from 0")


def parse_range(text: str) -> tuple[int, int]:
    """'A:B' (B exclusive) -> (A, B); argparse reports a bad one as a usage error (exit 2)."""
    try:
        a, b = text.split(":")
        start, end = int(a), int(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"frame range must be START:END, not {text!r}") from None
    if not 0 <= start < end:
        raise argparse.ArgumentTypeError(f"frame range {text!r} is empty or negative")
    return start, end


def parse_keep_slow(text: str) -> int:
    """'auto' -> AUTO (-1), or a frame count >= 0."""
    from deflicker.method.slow_changes import AUTO

    if text.strip().lower() == "auto":
        return AUTO
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"--keep-slow takes 'auto' or a number of frames >= 0, not {text!r}")
    return value


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that build :class:`Settings` (shared by run and analyze)."""
    d = Settings()
    parser.add_argument("--method", choices=METHODS, default=d.method, help="atlas method (default: %(default)s)")
    parser.add_argument("--analysis-size", type=int, default=d.analysis_size,
                        help="long side of the analysis proxy in pixels (default: %(default)s)")
    parser.add_argument("--segment-frames", type=int, default=d.segment_frames,
                        help="analyse a long clip in segments of this many frames, blended where they meet; "
                             f"0 = the whole clip at once, else at least {MIN_SEGMENT_FRAMES} (default: %(default)s)")
    parser.add_argument("--device", choices=DEVICES, default=d.device, help="compute device (default: %(default)s)")
    parser.add_argument("--cache-dir", default=None, help="analysis cache (default: $DEFLICKER_CACHE_DIR or ~/.cache/deflicker)")


def add_frames_argument(parser: argparse.ArgumentParser) -> None:
    """``--frames START:END`` by frame number (shared by run and analyze)."""
    parser.add_argument("--frames", type=parse_range, default=None, metavar="START:END", help=FRAMES_HELP)


def frame_range_from_args(args: argparse.Namespace, clip: str) -> Optional[tuple[int, int]]:
    """The positions in ``clip`` of the frames ``--frames`` numbers (None: the whole clip)."""
    from deflicker.io.files import index_range

    return None if args.frames is None else index_range(clip, args.frames, allow_short=args.allow_short)


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The options about reading the input clip (shared by run and analyze)."""
    parser.add_argument("--allow-short", action="store_true",
                        help="use the frames a damaged video or a sequence with missing numbers has, with a "
                             "warning (default: refuse it)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from parsed CLI options (validated)."""
    values = {"method": args.method, "analysis_size": args.analysis_size, "device": args.device,
              "segment_frames": args.segment_frames}
    if hasattr(args, "strength"):
        values.update(strength=args.strength, local_refinement=not args.no_refine, keep_slow=args.keep_slow)
    return Settings.from_dict(values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``deflicker run``."""
    parser.add_argument("input", help="video file or image sequence (folder or printf pattern)")
    parser.add_argument("-o", "--output", required=True,
                        help="video file, image pattern (shot.%%04d.png, shot.####.exr) or folder; "
                             "image frames keep the input's numbers")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files (only those this run writes; other files are kept)")
    parser.add_argument("--strength", type=float, default=Settings().strength, help="0 = input, 1 = full (default: %(default)s)")
    parser.add_argument("--no-refine", action="store_true", help="skip the local refinement")
    add_frames_argument(parser)
    parser.add_argument("--keep-slow", type=parse_keep_slow, default=Settings().keep_slow, metavar="FRAMES|auto",
                        help="keep brightness and colour changes slower than FRAMES (fades, exposure ramps) as "
                             "content; 0 flattens everything (default: auto, about one second of the clip)")
    parser.add_argument("--codec", default=None, help="output codec: ffv1 (lossless), h264, prores")
    parser.add_argument("--report", default=None, metavar="PNG", help="write a before/after plot")
    add_input_arguments(parser)
    add_settings_arguments(parser)


def run_command(args: argparse.Namespace) -> int:
    """Deflicker one clip with a progress bar."""
    from deflicker.cli.main import tqdm_progress
    from deflicker.engine import Engine, process

    engine = Engine(settings_from_args(args), cache_dir=args.cache_dir)
    progress, close = tqdm_progress("deflicker")
    try:
        stats = process(engine, args.input, args.output, frame_range=frame_range_from_args(args, args.input),
                        codec=args.codec, progress=progress, report=args.report, overwrite=args.overwrite,
                        allow_short=args.allow_short)
    finally:
        close()
    log.info("analysis %.1f s, render %.3f s/frame", stats["analysis_seconds"], stats["render_seconds_per_frame"])
    print(f"wrote {args.output} ({int(stats['frames'])} frames)")
    return 0
