#!/usr/bin/env python3
"""Install or uninstall Deflicker.ofx.bundle for Resolve and Nuke (standard library only).

    python install.py install   [--bundle PATH] [--user] [--prefix ROOT] [--resolve] [--nuke] [--link]
                                [--platform linux|darwin|win32]
    python install.py uninstall [--user] [--prefix ROOT] [--platform linux|darwin|win32]

``install`` copies the bundle into the OFX plugin folder (system wide by default; ``--user`` for
a per-user folder named through OFX_PLUGIN_PATH), and with ``--resolve`` adds the Deflicker
entries to Resolve's Workspace > Scripts menu, with ``--nuke`` one line to ~/.nuke/init.py that
loads the Deflicker menu. Everything it writes is recorded in the bundle's
``Contents/Resources/install-manifest.json``; ``uninstall`` removes exactly that, and the folders
it created. Both are idempotent. Without permission it stops with one line and exit code 77.
``--platform`` lays the files out for that OS (default: this one; another one needs ``--prefix``),
which is how the Windows and macOS layouts are tested on Linux.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_files import remove_tree, staging_dir, swap_in, tree_files  # noqa: E402
from install_paths import PLATFORMS, Locations, locations, plugin_path_hint, this_platform  # noqa: E402

BUNDLE = "Deflicker.ofx.bundle"
MANIFEST = Path("Contents/Resources/install-manifest.json")
#: Runtime leftovers inside a bundle that are never copied or compared.
VOLATILE = ("deflicker-ofx.log", "__pycache__", MANIFEST.name)
MARK = "# added by the Deflicker installer"
#: Resolve menu entries (file name -> deflicker_resolve command).
RESOLVE_ENTRIES = {
    "Deflicker - Analyse Timeline.py": "analyse",
    "Deflicker - Reanalyze Current Clip.py": "reanalyze-current",
    "Deflicker - Render.py": "render",
}
EXIT_NO_PERMISSION = 77  # sysexits.h EX_NOPERM


class InstallError(Exception):
    """A one-line reason to stop, with the exit code to stop with."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def no_permission(path: Path) -> InstallError:
    hint = "run it as Administrator" if sys.platform == "win32" else "run it with sudo"
    return InstallError(f"no permission to write {path} ({hint}, or install for this user only with --user)",
                        EXIT_NO_PERMISSION)


def check_writable(path: Path) -> None:
    """Refuse unless ``path``, or the nearest folder above it that exists, is writable."""
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    target = probe if probe.is_dir() else probe.parent
    if not os.access(target, os.W_OK | os.X_OK):
        raise no_permission(path)


def make_dirs(path: Path) -> list[str]:
    """Create ``path`` and missing parents; the ones created, outermost first."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    return [str(p) for p in reversed(missing)]


def source_bundle(given: Optional[Path]) -> Path:
    """The bundle to install: --bundle, else one beside this script, else build/dist/."""
    here = Path(__file__).resolve().parent
    candidates = [given] if given else [here / BUNDLE, here.parent / "build" / "dist" / BUNDLE]
    for path in candidates:
        if path is not None and (path / "Contents" / "Resources" / "python.cfg").is_file() and \
                list((path / "Contents").glob("*/Deflicker.ofx")):
            return path.resolve()
    shown = given or candidates[-1]
    raise InstallError(f"no Deflicker bundle at {shown} (build one: python installers/build_bundle.py)", 3)


def bundle_digest(bundle: Path) -> str:
    """Fingerprint of a bundle's file list, sizes and build info (runtime leftovers ignored)."""
    h = hashlib.sha256()
    for rel in tree_files(bundle):
        if not any(part in VOLATILE for part in rel.split("/")):
            h.update(f"{rel}\0{os.stat(bundle / rel).st_size}\n".encode())
    info = bundle / "Contents" / "Resources" / "build-info.json"
    if info.exists():
        h.update(info.read_bytes())
    return h.hexdigest()


def read_manifest(bundle: Path) -> Optional[dict[str, Any]]:
    path = bundle / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def write_manifest(bundle: Path, manifest: dict[str, Any]) -> None:
    path = bundle / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)


def resolve_entry(hosts: Path, command: str) -> str:
    """The text of one Resolve menu script: it puts hosts/ on sys.path and runs the command."""
    return (f"# Deflicker for DaVinci Resolve: {command} {MARK}; its uninstaller removes this file.\n"
            f"import sys\nsys.path.insert(0, {str(hosts)!r})\nimport deflicker_resolve\n"
            f"deflicker_resolve.main([{command!r}], globals())\n")


def nuke_line(hosts: Path) -> str:
    return f"import nuke; nuke.pluginAddPath({str(hosts)!r})  {MARK}\n"


def add_line(path: Path, line: str, manifest: dict[str, Any]) -> None:
    """Append ``line`` to ``path`` once; record it (and the file, if this created it)."""
    text = path.read_text() if path.exists() else None
    if text is None:
        manifest["files"].append(str(path))
    if text is None or line not in text:
        path.write_text((text or "") + ("" if not text or text.endswith("\n") else "\n") + line)
    if {"file": str(path), "line": line} not in manifest["lines"]:
        manifest["lines"].append({"file": str(path), "line": line})


def link_or_copy(src: str, dst: str) -> None:
    """Hard-link ``src`` to ``dst`` (dev/test installs), copying across file systems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def install(args: argparse.Namespace, loc: Locations) -> int:
    src = source_bundle(args.bundle)
    dst = loc.plugins / BUNDLE
    for folder in [loc.plugins] + [loc.resolve_scripts] * args.resolve + [loc.nuke_home] * args.nuke:
        check_writable(folder)
    old = read_manifest(dst)
    if old is None and (dst.exists() or dst.is_symlink()):
        raise InstallError(f"{dst} exists but this installer did not put it there: remove it first")
    manifest = old or {"bundle": str(dst), "dirs": [], "files": [], "lines": []}
    manifest["dirs"] += [d for d in make_dirs(loc.plugins) if d not in manifest["dirs"]]
    digest = bundle_digest(src)
    if old is not None and old.get("digest") == digest:
        print(f"{dst} is already this build: kept")
    else:
        staged = staging_dir(dst, "install")
        try:
            shutil.copytree(src, staged, symlinks=True, ignore=shutil.ignore_patterns(*VOLATILE),
                            copy_function=link_or_copy if args.link else shutil.copy2)
            swap_in(staged, dst)
        except BaseException:
            remove_tree(staged)
            raise
        print(f"installed {dst}")
    manifest.update(digest=digest, source=str(src))
    hosts = dst / "Contents" / "Resources" / "hosts"
    if args.resolve:
        manifest["dirs"] += [d for d in make_dirs(loc.resolve_scripts) if d not in manifest["dirs"]]
        for name, command in RESOLVE_ENTRIES.items():
            (loc.resolve_scripts / name).write_text(resolve_entry(hosts, command))
            if str(loc.resolve_scripts / name) not in manifest["files"]:
                manifest["files"].append(str(loc.resolve_scripts / name))
        print(f"Resolve: Workspace > Scripts > Utility > Deflicker ... ({loc.resolve_scripts})")
    if args.nuke:
        manifest["dirs"] += [d for d in make_dirs(loc.nuke_home) if d not in manifest["dirs"]]
        add_line(loc.nuke_home / "init.py", nuke_line(hosts), manifest)
        print(f"Nuke: the Deflicker menu loads from {loc.nuke_home / 'init.py'}")
    write_manifest(dst, manifest)
    if loc.user:
        print("this folder is not searched by default; before starting Resolve or Nuke run:")
        print(f"  {plugin_path_hint(args.platform, loc.plugins)}")
    return 0


def remove_line(path: Path, line: str, created: bool) -> None:
    """Drop ``line`` from ``path``; delete the file if this installer created it and it is now empty."""
    if not path.exists():
        return
    text = path.read_text().replace(line, "")
    if created and not text.strip():
        path.unlink()
    else:
        path.write_text(text)


def uninstall(args: argparse.Namespace, loc: Locations) -> int:
    dst = loc.plugins / BUNDLE
    if not (dst.exists() or dst.is_symlink()):
        print(f"nothing installed at {dst}")
        return 0
    manifest = read_manifest(dst)
    if manifest is None:
        raise InstallError(f"{dst} was not installed by this installer (no {MANIFEST.name}): remove it by hand")
    check_writable(loc.plugins)
    aside = staging_dir(dst, "uninstall")
    os.replace(dst, aside)  # first, so a plugin folder it may not change stops it before anything changed
    try:
        for entry in manifest["lines"]:
            check_writable(Path(entry["file"]))
            remove_line(Path(entry["file"]), entry["line"], entry["file"] in manifest["files"])
        for name in manifest["files"]:
            path = Path(name)
            if path.is_file() and MARK in path.read_text(errors="replace"):
                check_writable(path.parent)
                path.unlink()
    except BaseException:
        os.replace(aside, dst)  # still installed: uninstall again once allowed (every step is idempotent)
        raise
    remove_tree(aside)
    for name in reversed(manifest["dirs"]):
        path = Path(name)
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    print(f"removed {dst}")
    return 0


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="install.py", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("install", "uninstall"))
    parser.add_argument("--bundle", type=Path, help="the Deflicker.ofx.bundle to install (default: beside this script)")
    parser.add_argument("--user", action="store_true", help="install for this user only (prints the OFX_PLUGIN_PATH to set)")
    parser.add_argument("--prefix", type=Path, help="install under this root instead of / (packaging, tests)")
    parser.add_argument("--resolve", action="store_true", help="add the Deflicker scripts to Resolve's Scripts menu")
    parser.add_argument("--nuke", action="store_true", help="load the Deflicker menu in Nuke (~/.nuke/init.py)")
    parser.add_argument("--link", action="store_true", help="dev/test: hard-link the bundle's files instead of copying")
    parser.add_argument("--platform", choices=PLATFORMS, default=this_platform(),
                        help="the OS whose folders to use (default: this one; another one needs --prefix)")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    loc = locations(args.platform, user=args.user, prefix=args.prefix.resolve() if args.prefix else None)
    try:
        if args.platform != this_platform() and args.prefix is None:
            raise InstallError(f"the {args.platform} layout on {this_platform()} needs --prefix ROOT", 2)
        return (install if args.action == "install" else uninstall)(args, loc)
    except InstallError as e:
        print(f"{args.action}: error: {e}", file=sys.stderr)
        return e.code
    except PermissionError as e:
        print(f"{args.action}: error: {no_permission(Path(e.filename or loc.plugins))}", file=sys.stderr)
        return EXIT_NO_PERMISSION
    except OSError as e:
        print(f"{args.action}: error: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
