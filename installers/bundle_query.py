"""Describe a Python installation for build_bundle.py: run BY the interpreter being described.

``python bundle_query.py ROOT [ROOT ...] [--exclude NAME ...] [--no-files NAME ...]`` prints one JSON object: the
interpreter's version, its stdlib directories, its libpython, and every file (with its path
relative to its site directory) of the distributions named ROOT and their runtime requirements,
recursively. Standard library only: it runs in whatever interpreter the bundle is built from.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import sysconfig
from importlib import metadata
from typing import Any, Callable, Optional


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def marker_evaluator() -> Callable[[str], tuple[str, bool]]:
    """requirement string -> (name, wanted here); uses packaging when the interpreter has it."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        try:
            from pip._vendor.packaging.requirements import Requirement  # type: ignore[assignment]
        except ImportError:
            Requirement = None  # type: ignore[assignment,misc]

    def evaluate(text: str) -> tuple[str, bool]:
        if Requirement is not None:
            req = Requirement(text)
            return req.name, req.marker is None or bool(req.marker.evaluate({"extra": ""}))
        name = re.match(r"[A-Za-z0-9_.\-]+", text)
        marker = text.split(";", 1)[1] if ";" in text else ""
        return (name.group(0) if name else text), "extra" not in marker  # no packaging: skip only extras

    return evaluate


def closure(roots: list[str], exclude: set[str]) -> dict[str, metadata.Distribution]:
    """The named distributions and everything they need at run time, by canonical name."""
    evaluate = marker_evaluator()
    found: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = canonical(todo.pop())
        if name in found or name in exclude:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            print(f"bundle_query: {name} is not installed in {sys.executable}; skipped", file=sys.stderr)
            continue
        found[name] = dist
        for text in dist.requires or []:
            dep, wanted = evaluate(text)
            if wanted:
                todo.append(dep)
    return found


def dist_files(dist: metadata.Distribution) -> tuple[str, list[str]]:
    """(site directory, paths relative to it) of an installed distribution, bytecode included."""
    site = os.path.abspath(str(dist.locate_file("")))
    tag = sys.implementation.cache_tag
    out: list[str] = []
    for entry in dist.files or []:
        rel = os.path.normpath(str(entry))
        if rel.startswith("..") or os.path.isabs(rel) or "__pycache__" in rel.split(os.sep):
            continue  # scripts in bin/, headers, and stale bytecode
        if not os.path.isfile(os.path.join(site, rel)):
            continue
        out.append(rel)
        if rel.endswith(".py"):
            head, tail = os.path.split(rel)
            pyc = os.path.join(head, "__pycache__", f"{tail[:-3]}.{tag}.pyc")
            if os.path.isfile(os.path.join(site, pyc)):
                out.append(pyc)
    return site, out


def libpython() -> Optional[str]:
    """The shared libpython the plugin links (Linux/macOS) or pythonXY.dll (Windows), if any."""
    if os.name == "nt":
        dll = os.path.join(sys.base_prefix, f"python{sys.version_info[0]}{sys.version_info[1]}.dll")
        return dll if os.path.isfile(dll) else None
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    for name in (sysconfig.get_config_var("INSTSONAME"), sysconfig.get_config_var("LDLIBRARY")):
        if name and os.path.isfile(os.path.join(libdir, name)):
            return os.path.join(libdir, name)
    return None


def stdlib_dirs() -> list[str]:
    """Directories of the standard library (and its extension modules) on sys.path."""
    base = os.path.abspath(sys.base_prefix)
    dirs = []
    for entry in sys.path:
        path = os.path.abspath(entry) if entry else ""
        if path.startswith(base + os.sep) and "site-packages" not in path and os.path.isdir(path):
            dirs.append(path)
    return dirs


def torch_info(dists: dict[str, metadata.Distribution]) -> Optional[dict[str, Any]]:
    """Version and CUDA flavour of the torch in ``dists``, read from metadata (no import)."""
    dist = dists.get("torch")
    if dist is None:
        return None
    version = dist.version
    local = version.split("+", 1)[1] if "+" in version else ""
    nvidia = sorted(n for n in dists if n.startswith("nvidia-"))
    cuda = local[2:] if local.startswith("cu") else (dists["nvidia-cuda-runtime-cu12"].version
                                                      if "nvidia-cuda-runtime-cu12" in dists else None)
    return {"version": version, "cuda": cuda if (cuda or nvidia) else None, "cuda_packages": nvidia}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+")
    parser.add_argument("--exclude", action="append", default=[], help="neither shipped nor followed")
    parser.add_argument("--no-files", action="append", default=[], help="followed, but its files not listed")
    args = parser.parse_args(argv)
    dists = closure(args.roots, {canonical(n) for n in args.exclude})
    files = {}
    for name, dist in sorted(dists.items()):
        if name in {canonical(n) for n in args.no_files}:
            continue
        site, rels = dist_files(dist)
        files[name] = {"version": dist.version, "site": site, "files": rels}
    json.dump({
        "executable": sys.executable,
        "version": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "base_prefix": os.path.abspath(sys.base_prefix),
        "stdlib": stdlib_dirs(),
        "libpython": libpython(),
        "platform": sys.platform,
        "torch": torch_info(dists),
        "distributions": files,
    }, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
