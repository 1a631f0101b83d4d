"""Put the Deflicker bundle's own Python packages on sys.path of a host's Python (Resolve, Nuke).

The host helpers live in ``Deflicker.ofx.bundle/Contents/Resources/hosts``; the packages they
need (``deflicker``, torch, ...) are in the site-packages that ``Resources/python.cfg`` names.
Those are compiled for one Python version (``build-info.json``), so a host running another
version gets a one-line explanation instead of a crash deep inside numpy or torch.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional


class BundleError(RuntimeError):
    """The bundle's packages cannot be used from this Python."""


def resources_dir() -> Path:
    """Contents/Resources of the bundle this file was installed in."""
    return Path(__file__).resolve().parent.parent


def bundle_paths(resources: Path) -> list[str]:
    """The ``path =`` entries of python.cfg, absolute (relative ones are from ``resources``)."""
    cfg = resources / "python.cfg"
    out = []
    for line in cfg.read_text().splitlines() if cfg.is_file() else []:
        key, _, value = line.partition("=")
        if key.strip() == "path" and value.strip():
            path = Path(value.strip())
            out.append(str(path if path.is_absolute() else resources / path))
    return out


def use_bundle_python(resources: Optional[Path] = None) -> list[str]:
    """Prepend the bundle's package folders to sys.path; returns them ([] outside a bundle)."""
    resources = resources or resources_dir()
    paths = bundle_paths(resources)
    info = resources / "build-info.json"
    if paths and info.is_file():
        wanted = json.loads(info.read_text()).get("python", "")
        have = f"{sys.version_info[0]}.{sys.version_info[1]}"
        if wanted and wanted != have:
            raise BundleError(f"this host runs Python {have} but the Deflicker bundle carries packages for Python "
                              f"{wanted}: point the host at a Python {wanted} or rebuild the bundle with one")
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    return paths
