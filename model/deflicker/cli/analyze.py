"""``deflicker analyze CLIP``: analyse a clip ahead of time and store it in the cache."""
from __future__ import annotations

import argparse

from deflicker.cli.run import (add_frames_argument, add_input_arguments, add_settings_arguments, frame_range_from_args,
                               settings_from_args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``deflicker analyze``."""
    parser.add_argument("clip", help="video file or image sequence (folder or printf pattern)")
    add_frames_argument(parser)
    parser.add_argument("--force", action="store_true", help="recompute even when the cache holds this clip")
    add_input_arguments(parser)
    add_settings_arguments(parser)


def run_command(args: argparse.Namespace) -> int:
    """Analyse (or find in the cache) and print where the analysis is stored."""
    from deflicker.cli.main import tqdm_progress
    from deflicker.engine import Engine

    engine = Engine(settings_from_args(args), cache_dir=args.cache_dir)
    progress, close = tqdm_progress("analyse")
    try:
        with engine.open(args.clip, frame_range=frame_range_from_args(args, args.clip),
                         allow_short=args.allow_short) as session:
            analyses = session.analyze(progress, force=args.force)
            paths = session.segments.paths
    finally:
        close()
    frames = len(session)
    shots = sum(len(a.shots) - 1 for a in analyses)
    parts = f", {len(analyses)} segments" if len(analyses) > 1 else ""
    print(f"analysed {frames} frames ({shots} shot{'s' if shots != 1 else ''}{parts}): "
          + " ".join(str(p) for p in paths))
    return 0
