"""The install manifest: what install.py wrote, so that uninstall removes exactly that (standard library only).

It is ``Deflicker.ofx.bundle/Contents/Resources/install-manifest.json``. The uninstaller, run as
root, acts on what it names, so it is believed only when the manifest and each folder from it up to
the bundle are real (no links), owned by root or this user and writable by no one else, and it is
JSON of the shape install.py writes; which paths it may name is install.py's to check.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Optional

from safe_files import UnsafeFile, check_trusted, read_text, replace_text

MANIFEST = Path("Contents/Resources/install-manifest.json")


def _shape_problem(manifest: Any) -> Optional[str]:
    """What is wrong with the JSON's shape, or None."""
    if not isinstance(manifest, dict):
        return "not a JSON object"
    for key in ("dirs", "files"):
        if not isinstance(manifest.get(key), list) or not all(isinstance(p, str) for p in manifest[key]):
            return f"'{key}' is not a list of paths"
    lines = manifest.get("lines")
    if not isinstance(lines, list) or not all(isinstance(e, dict) and isinstance(e.get("file"), str)
                                              and isinstance(e.get("line"), str) for e in lines):
        return "'lines' is not a list of {file, line}"
    if not all(isinstance(manifest.get(key, ""), str) for key in ("bundle", "digest", "source")):
        return "'bundle', 'digest' or 'source' is not a string"
    return None


def read_manifest(bundle: Path) -> Optional[dict[str, Any]]:
    """The manifest of the installed ``bundle``; None when ``bundle`` is not a folder holding one (this
    installer did not put it there). Raises UnsafeFile, with the reason, when it cannot be trusted."""
    try:
        if not stat.S_ISDIR(os.lstat(bundle).st_mode) or not os.path.lexists(bundle / MANIFEST):
            return None
    except FileNotFoundError:
        return None
    for folder in (bundle, bundle / "Contents", bundle / MANIFEST.parent):
        check_trusted(folder, os.lstat(folder), folder=True)
    found = read_text(bundle / MANIFEST)
    if found is None:
        return None
    text, st = found
    check_trusted(bundle / MANIFEST, st, folder=False)
    try:
        manifest = json.loads(text)
    except ValueError:
        manifest = None
    problem = _shape_problem(manifest) if manifest is not None else "not valid JSON"
    if problem:
        raise UnsafeFile(f"{bundle / MANIFEST}: {problem}: not trusted")
    return dict(manifest)


def write_manifest(bundle: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` into the installed ``bundle`` (atomically, mode 0644)."""
    replace_text(bundle / MANIFEST, json.dumps(manifest, indent=2) + "\n")
