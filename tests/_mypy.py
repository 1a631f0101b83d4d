"""Run mypy --strict on host helper sources (the Resolve script, the Nuke helper) for their tests."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mypy_errors(*folders: str, cache_dir: Path) -> str:
    """mypy's report on installers/<folder>s with the deflicker package and the bootstrap importable; '' if clean."""
    env = {**os.environ, "MYPYPATH": os.pathsep.join([str(ROOT / "model"), str(ROOT / "installers" / "common")])}
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache_dir),
                           *(str(ROOT / "installers" / f) for f in folders), str(ROOT / "installers" / "common")],
                          capture_output=True, text=True, env=env, timeout=300)
    return "" if proc.returncode == 0 else proc.stdout + proc.stderr
