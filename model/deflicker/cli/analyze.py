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
            analysis = session.analyze(progress, force=args.force)
    finally:
        close()
    shots = len(analysis.shots) - 1
    print(f"analysed {analysis.frame_count} frames ({shots} shot{'s' if shots != 1 else ''}): {session.cache_path}")
    return 0
