"""The ``deflicker`` command line.

Each subcommand lives in the module that does its job: that module defines
``add_arguments(parser)`` and ``run_command(args) -> int``. This file wires them, turns
:class:`~deflicker.errors.DeflickerError` into a one-line message and its exit code, turns
Ctrl-C into exit 130, and is the only place that exits the process.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any, Callable, Optional, Sequence

from deflicker import __version__
from deflicker.errors import DeflickerError

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("deflicker.cli.run", "deflicker a clip: analysis (cached), filter, refinement, write"),
    "analyze": ("deflicker.cli.analyze", "analyse a clip (flow + atlas) and store it in the cache"),
    "synth": ("deflicker.synth.clips", "render the synthetic benchmark clips with exact flow and masks"),
    "bench": ("deflicker.bench.command", "score every method on the synthetic set; speed benchmarks"),
    "train-filter": ("deflicker.train.trainer", "train the neural filter on still images"),
}

log = logging.getLogger("deflicker")


def tqdm_progress(desc: str) -> tuple[Callable[[float, str], None], Callable[[], None]]:
    """A (progress, close) pair drawing a tqdm bar on stderr for a fraction-based callback."""
    from tqdm import tqdm

    bars: list[Any] = []  # drawn on the first report, so a refusal up front prints only its own line

    def progress(fraction: float, label: str) -> None:
        if not bars:
            bars.append(tqdm(total=1000, desc=desc, unit="‰", leave=False, file=sys.stderr,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}"))
        bar = bars[0]
        n = int(round(fraction * 1000))
        if n > bar.n:
            bar.update(n - bar.n)
        bar.set_postfix_str(label, refresh=False)

    def close() -> None:
        for bar in bars:
            bar.close()

    return progress, close


def version_text() -> str:
    """Versions of the package and its main dependencies, and the compute device."""
    parts = [f"deflicker {__version__}"]
    for name in ("numpy", "cv2", "av", "torch"):
        try:
            mod = importlib.import_module(name)
            parts.append(f"{name} {getattr(mod, '__version__', '?')}")
        except ImportError:
            parts.append(f"{name} missing")
    try:
        import torch

        parts.append("device cuda" if torch.cuda.is_available() else "device cpu")
    except ImportError:
        pass
    return ", ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (imports each subcommand's module)."""
    parser = argparse.ArgumentParser(prog="deflicker", description="Blind video deflickering with a flawed atlas and a neural filter.")
    parser.add_argument("--version", action="store_true", help="print versions and the compute device")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        try:  # TODO(lead): drop once every subcommand module has landed
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``deflicker`` console script; returns (and exits with) the code."""
    code = _main(argv)
    if argv is None:
        sys.exit(code)
    return code


def _main(argv: Optional[Sequence[str]]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="deflicker: %(levelname)s: %(message)s")
    if args.version:
        print(version_text())
        return 0
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).run_command(args) or 0)
    except KeyboardInterrupt:
        print("deflicker: cancelled", file=sys.stderr)
        return 130
    except DeflickerError as exc:
        print(f"deflicker: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except MemoryError:
        print("deflicker: error: out of memory (try a smaller --analysis-size or frame range)", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, never a traceback
        log.debug("unexpected error", exc_info=True)
        print(f"deflicker: internal error: {type(exc).__name__}: {exc} (run with -v for details)", file=sys.stderr)
        if args.verbose:
            import traceback

            traceback.print_exc()
        return 1

