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
Run as root it trusts nothing it finds (safe_files.py): installed files get fixed modes, never the
source's; it never writes through a symbolic link; and uninstall believes only a manifest that no
other user could have written, naming only paths the installer writes (exit code 1 otherwise).
``--platform`` lays the files out for that OS (default: this one; another one needs ``--prefix``),
which is how the Windows and macOS layouts are tested on Linux.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import stat
import sys
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_files import remove_tree, staging_dir, swap_in, tree_files  # noqa: E402
from install_manifest import MANIFEST, read_manifest, write_manifest  # noqa: E402
from install_paths import PLATFORMS, Locations, locations, plugin_path_hint, this_platform  # noqa: E402
from safe_files import UnsafeFile, copy_tree, existing_file, make_dirs, read_text, replace_text  # noqa: E402

BUNDLE = "Deflicker.ofx.bundle"
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


def resolve_entry(hosts: Path, command: str) -> str:
    """The text of one Resolve menu script: it puts hosts/ on sys.path and runs the command."""
    return (f"# Deflicker for DaVinci Resolve: {command} {MARK}; its uninstaller removes this file.\n"
            f"import sys\nsys.path.insert(0, {str(hosts)!r})\nimport deflicker_resolve\n"
            f"deflicker_resolve.main([{command!r}], globals())\n")


def nuke_line(hosts: Path) -> str:
    return f"import nuke; nuke.pluginAddPath({str(hosts)!r})  {MARK}\n"


def add_line(path: Path, line: str, manifest: dict[str, Any]) -> None:
    """Append ``line`` to ``path`` once (never through a link); record it (and the file, if this created it)."""
    found = read_text(path)
    text, st = found if found else ("", None)
    if found is None:
        manifest["files"].append(str(path))
    if found is None or line not in text:
        replace_text(path, text + ("" if not text or text.endswith("\n") else "\n") + line, like=st)
    if {"file": str(path), "line": line} not in manifest["lines"]:
        manifest["lines"].append({"file": str(path), "line": line})


def is_written_file(path: Path) -> bool:
    """Whether install.py writes files at ``path``'s place: a Resolve menu entry or a Nuke init.py."""
    return (path.name in RESOLVE_ENTRIES and path.parent.parts[-3:] == ("Fusion", "Scripts", "Utility")) or \
        (path.name == "init.py" and path.parent.name == ".nuke")


def check_manifest_paths(manifest: dict[str, Any], dst: Path, loc: Locations, root: Optional[Path]) -> None:
    """Refuse a manifest naming a path install.py never writes: outside the install ``root`` (--prefix),
    not absolute or with '..', a file other than a menu entry or init.py, a line other than the
    Nuke line, or a folder that is none of their folders or above them."""
    def clean(name: str) -> Path:
        path = Path(name)
        if not path.is_absolute() or os.path.normpath(name) != name or ".." in path.parts:
            raise UnsafeFile(f"{dst / MANIFEST} names {name!r}, not a clean absolute path: not trusted")
        return path

    def refuse(name: str, why: str) -> UnsafeFile:
        return UnsafeFile(f"{dst / MANIFEST} names {name}, {why}: not trusted")

    written = [clean(n) for n in manifest["files"]] + [clean(e["file"]) for e in manifest["lines"]]
    for path in written:
        if root is not None and root not in path.parents:
            raise refuse(str(path), f"outside the install root {root}")
        if not is_written_file(path):
            raise refuse(str(path), "not a file the installer writes")
    line = nuke_line(dst / "Contents" / "Resources" / "hosts")
    for entry in manifest["lines"]:
        if Path(entry["file"]).name != "init.py" or entry["line"] != line:
            raise refuse(entry["file"], "with a line the installer does not write")
    places = [loc.plugins] + [path.parent for path in written]
    for name in manifest["dirs"]:
        path = clean(name)
        if not any(path == place or path in place.parents for place in places):
            raise refuse(name, "not a folder the installer creates")


def install(args: argparse.Namespace, loc: Locations) -> int:
    src = source_bundle(args.bundle)
    dst = loc.plugins / BUNDLE
    for folder in [loc.plugins] + [loc.resolve_scripts] * args.resolve + [loc.nuke_home] * args.nuke:
        check_writable(folder)
    old = read_manifest(dst)
    if old is None and os.path.lexists(dst):
        raise InstallError(f"{dst} exists but this installer did not put it there: remove it first")
    if old is not None:
        check_manifest_paths(old, dst, loc, args.prefix)
    for target in [loc.resolve_scripts / name for name in RESOLVE_ENTRIES] * args.resolve + \
            [loc.nuke_home / "init.py"] * args.nuke:
        existing_file(target)  # refused before anything changed
    digest = bundle_digest(src)  # reads the whole source: a failure here leaves nothing behind
    manifest = old or {"bundle": str(dst), "dirs": [], "files": [], "lines": []}
    manifest["dirs"] += [d for d in make_dirs(loc.plugins) if d not in manifest["dirs"]]
    if old is not None and old.get("digest") == digest:
        print(f"{dst} is already this build: kept")
    else:
        staged = staging_dir(dst, "install")
        try:
            copy_tree(src, staged, link=args.link, skip=VOLATILE)
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
            replace_text(loc.resolve_scripts / name, resolve_entry(hosts, command))
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
    """Drop ``line`` from ``path`` (never through a link); delete the file if this installer created it
    and it is now empty."""
    found = read_text(path)
    if found is None:
        return
    text = found[0].replace(line, "")
    if created and not text.strip():
        path.unlink()
    elif text != found[0]:
        replace_text(path, text, like=found[1])


def remove_file(path: Path) -> None:
    """Remove a file the installer wrote (it carries MARK), or a link put in its place (as a link)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    found = read_text(path) if stat.S_ISREG(st.st_mode) else None
    if stat.S_ISLNK(st.st_mode) or (found and MARK in found[0]):
        check_writable(path.parent)
        path.unlink()


def uninstall(args: argparse.Namespace, loc: Locations) -> int:
    dst = loc.plugins / BUNDLE
    if not os.path.lexists(dst):
        print(f"nothing installed at {dst}")
        return 0
    manifest = read_manifest(dst)
    if manifest is None:
        raise InstallError(f"{dst} was not installed by this installer (no {MANIFEST.name}): remove it by hand")
    check_manifest_paths(manifest, dst, loc, args.prefix)
    for entry in manifest["lines"]:
        existing_file(Path(entry["file"]))  # refused before anything changed
    check_writable(loc.plugins)
    aside = staging_dir(dst, "uninstall")
    os.replace(dst, aside)  # first, so a plugin folder it may not change stops it before anything changed
    try:
        for entry in manifest["lines"]:
            check_writable(Path(entry["file"]))
            remove_line(Path(entry["file"]), entry["line"], entry["file"] in manifest["files"])
        for name in manifest["files"]:
            remove_file(Path(name))
    except BaseException:
        os.replace(aside, dst)  # still installed: uninstall again once allowed (every step is idempotent)
        raise
    remove_tree(aside)
    for name in reversed(manifest["dirs"]):
        path = Path(name)
        if os.path.isdir(path) and not os.path.islink(path) and not any(path.iterdir()):
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
    parser.add_argument("--link", action="store_true",
                        help="dev/test: hard-link the bundle's files that already have their installed mode and owner")
    parser.add_argument("--platform", choices=PLATFORMS, default=this_platform(),
                        help="the OS whose folders to use (default: this one; another one needs --prefix)")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    args.prefix = args.prefix.resolve() if args.prefix else None
    loc = locations(args.platform, user=args.user, prefix=args.prefix)
    try:
        if args.platform != this_platform() and args.prefix is None:
            raise InstallError(f"the {args.platform} layout on {this_platform()} needs --prefix ROOT", 2)
        return (install if args.action == "install" else uninstall)(args, loc)
    except InstallError as e:
        print(f"{args.action}: error: {e}", file=sys.stderr)
        return e.code
    except UnsafeFile as e:
        print(f"{args.action}: error: {e}", file=sys.stderr)
        return 1
    except PermissionError as e:
        print(f"{args.action}: error: {no_permission(Path(e.filename or loc.plugins))}", file=sys.stderr)
        return EXIT_NO_PERMISSION
    except OSError as e:
        print(f"{args.action}: error: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
