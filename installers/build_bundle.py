#!/usr/bin/env python3
"""Assemble a self-contained Deflicker.ofx.bundle from the build output (standard library only).

    python installers/build_bundle.py [--build-dir build] [-o build/dist/Deflicker.ofx.bundle]
        [--python .venv/bin/python] [--torch cpu|existing [--torch-python PY]] [--link [hard|symlink]]

The bundle holds the plugin binary, ``Contents/<arch>/Deflicker.ofx`` (a small loader without Python,
what the host loads) and the core beside it (``deflicker_core.so|.dylib|.dll``: the plugin, the bridge
and the embedded Python, which the loader loads by full path), ``deflicker_server`` beside them on
Linux and macOS (the model server in a child process, ``DEFLICKER_SERVER=child``), and, in ``Contents/Resources``, the
Python it embeds:
``python/`` (libpython, the standard library, a site-packages with the ``deflicker`` package,
its committed weights and its runtime dependencies), ``python.cfg`` (paths relative to
Resources: the bridge finds it through the bundle path the host reports, so the plugin never
uses the user's Python environment), ``hosts/`` (the Resolve and Nuke helpers) and ``build-info.json``.

``--torch cpu`` ships the CPU torch of ``--python`` (refused if that torch is a CUDA build);
``--torch existing --torch-python PY`` ships the torch (CUDA or not) that another interpreter
of the same Python version already has, with its nvidia-* libraries. ``--link`` hard-links files
instead of copying them, for dev and test builds (same file system; release builds copy);
``--link symlink`` is quicker still but only for the embedded plugin: a host's own Python that
also has OpenCV cannot load the bundle's cv2 through links (cv2 resolves its real path).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_query import canonical  # noqa: E402
from bundle_files import MODES, Group, group_pairs, place_all, remove_tree, staging_dir, swap_in  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
BUNDLE = "Deflicker.ofx.bundle"
RES = Path("Contents/Resources")
PROJECT = "atlas-deflicker"
#: Top-level stdlib entries a render never needs (tests, GUIs, installers, build configs).
STDLIB_SKIP = re.compile(r"^(site-packages|test|tests|idlelib|tkinter|turtledemo|ensurepip|lib2to3|config-.*)$")
#: Host helper sources copied into Contents/Resources/hosts.
HOST_SOURCES = ("common", "resolve", "nuke")
#: The core's file name beside Deflicker.ofx, per platform (CMakeLists.txt, target deflicker_core).
CORE_NAMES = ("deflicker_core.so", "deflicker_core.dylib", "deflicker_core.dll")
#: The child-process model server beside the core (CMakeLists.txt, target deflicker_server; POSIX only).
SERVER_NAME = "deflicker_server"


class BuildError(Exception):
    """A one-line reason the bundle cannot be built."""


def plugin_identity(build_dir: Path) -> dict[str, Any]:
    """The plugin's identifier and version, as the build generated them (from deflicker.server.plugin_spec)
    into ``build_dir``/generated/params_gen.h: those of the binaries being bundled."""
    header = build_dir / "generated" / "params_gen.h"
    try:
        text = header.read_text()
    except OSError as exc:
        raise BuildError(f"cannot read {header} (build the plugin first): {exc.strerror or exc}") from None
    found = {k: re.search(rf"\b{k}\s*=\s*([^;]+);", text) for k in ("kPluginIdentifier", "kVersionMajor", "kVersionMinor")}
    if not all(found.values()):
        raise BuildError(f"{header} lacks kPluginIdentifier/kVersionMajor/kVersionMinor")
    ident = found["kPluginIdentifier"].group(1).strip().strip('"')  # type: ignore[union-attr]
    major = int(found["kVersionMajor"].group(1))  # type: ignore[union-attr]
    minor = int(found["kVersionMinor"].group(1))  # type: ignore[union-attr]
    return {"identifier": ident, "version_major": major, "version_minor": minor}


def package_version(root: Path = ROOT) -> str:
    """deflicker.__version__, read without importing the package."""
    found = re.search(r'^__version__\s*=\s*"([^"]+)"', (root / "model" / "deflicker" / "__init__.py").read_text(), re.M)
    return found.group(1) if found else "unknown"


def query(python: str, *args: str) -> dict[str, Any]:
    """Run bundle_query.py in ``python`` and return what it reports."""
    try:
        proc = subprocess.run([python, str(HERE / "bundle_query.py"), *args], capture_output=True, text=True, timeout=300)
    except OSError as e:
        raise BuildError(f"cannot run {python}: {e.strerror}") from None
    if proc.returncode != 0:
        raise BuildError(f"{python} could not describe its packages: {proc.stderr.strip().splitlines()[-1:]}")
    for line in proc.stderr.splitlines():
        print(f"warning: {line}", file=sys.stderr)
    found: dict[str, Any] = json.loads(proc.stdout)
    return found


def plugin_binaries(build: Path) -> tuple[Path, Path]:
    """The built Contents/<arch>/Deflicker.ofx (the loader) of ``build`` and the core beside it."""
    found = sorted((build / BUNDLE / "Contents").glob("*/Deflicker.ofx"))
    if not found:
        raise BuildError(f"no plugin binary under {build / BUNDLE}/Contents: run 'make bundle' first")
    cores = [found[0].parent / name for name in CORE_NAMES if (found[0].parent / name).is_file()]
    if not cores:
        raise BuildError(f"no plugin core ({'|'.join(CORE_NAMES)}) beside {found[0]}: run 'make bundle' first")
    return found[0], cores[0]


def package_data_globs(root: Path = ROOT) -> list[str]:
    """The deflicker package-data patterns declared in pyproject.toml."""
    found = re.search(r"^\[tool\.setuptools\.package-data\]\s*\ndeflicker\s*=\s*\[([^\]]*)\]",
                      (root / "pyproject.toml").read_text(), re.M)
    return re.findall(r'"([^"]+)"', found.group(1)) if found else []


def project_requirements(root: Path = ROOT) -> list[str]:
    """Names of the runtime dependencies in pyproject.toml (the venv's metadata may lag behind it)."""
    found = re.search(r"^dependencies\s*=\s*\[([^\]]*)\]", (root / "pyproject.toml").read_text(), re.M)
    specs = re.findall(r'"([^"]+)"', found.group(1)) if found else []
    return [m.group(0) for m in (re.match(r"[A-Za-z0-9_.\-]+", spec) for spec in specs) if m]


def project_files(root: Path = ROOT) -> list[tuple[Path, str]]:
    """(source, path in site-packages) of the deflicker package: modules plus package data."""
    pkg = root / "model" / "deflicker"
    files = {p for p in pkg.rglob("*.py") if "__pycache__" not in p.parts}
    for pattern in package_data_globs(root):
        files.update(p for p in pkg.glob(pattern) if p.is_file())
    return [(p, "deflicker/" + p.relative_to(pkg).as_posix()) for p in sorted(files)]


def stdlib_groups(info: dict[str, Any]) -> list[Group]:
    """The standard library (minus STDLIB_SKIP) as groups under Resources/python."""
    base = Path(info["base_prefix"])
    groups: list[Group] = []
    covered: list[Path] = []
    for d in info["stdlib"]:
        top = Path(d)
        if any(top.is_relative_to(c) for c in covered):
            continue  # lib-dynload lies inside lib/pythonX.Y
        covered.append(top)
        rels = []
        for dirpath, dirnames, filenames in os.walk(top):
            if dirpath == str(top):
                dirnames[:] = [n for n in dirnames if not STDLIB_SKIP.match(n)]
            rel_dir = os.path.relpath(dirpath, top).replace(os.sep, "/")
            rels += [name if rel_dir == "." else f"{rel_dir}/{name}" for name in filenames]
        groups.append(Group(top, RES / "python" / top.relative_to(base), tuple(sorted(rels))))
    return groups


def site_dir(info: dict[str, Any]) -> str:
    """site-packages under Resources/python: lib/pythonX.Y/site-packages, or Lib/site-packages."""
    return (Path(info["stdlib"][0]).relative_to(info["base_prefix"]) / "site-packages").as_posix()


def dist_groups(info: dict[str, Any], skip: set[str], site: Path) -> list[Group]:
    """Every distribution in ``info`` not in ``skip``, as groups under ``site``."""
    return [Group(Path(d["site"]), site, tuple(Path(r).as_posix() for r in d["files"]))
            for name, d in sorted(info["distributions"].items()) if name not in skip]


def torch_sources(args: argparse.Namespace, main: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(query of the interpreter torch comes from, torch facts) for --torch cpu|existing."""
    if args.torch == "cpu":
        torch = main["torch"]
        if torch is None:
            raise BuildError(f"{main['executable']} has no torch: install the CPU wheel (pip install torch --index-url "
                             "https://download.pytorch.org/whl/cpu) or use --torch existing --torch-python PY")
        if torch["cuda"]:
            raise BuildError(f"the torch in {main['executable']} is a CUDA build ({torch['version']}): use --torch existing "
                             "to ship it, or install the CPU wheel for --torch cpu")
        return main, torch
    if not args.torch_python:
        raise BuildError("--torch existing needs --torch-python PY (the interpreter whose torch to ship)")
    other = query(args.torch_python, "torch")
    if other["torch"] is None:
        raise BuildError(f"{args.torch_python} has no torch installed")
    if other["version"] != main["version"]:
        raise BuildError(f"{args.torch_python} is Python {other['version']} but the plugin embeds Python "
                         f"{main['version']}: torch's extension modules only load in the same version")
    return other, other["torch"]


def python_cfg(info: dict[str, Any]) -> str:
    """python.cfg for the bundle: every path relative to Contents/Resources."""
    base = Path(info["base_prefix"])
    lines = ["# Python environment of the Deflicker OFX bridge (written by installers/build_bundle.py;",
             "# paths are relative to this directory).", "home = python"]
    lines += [f"stdlib = python/{Path(d).relative_to(base).as_posix()}" for d in info["stdlib"]]
    lines.append(f"path = python/{site_dir(info)}")
    return "\n".join(lines) + "\n"


def macos_libpython_change(otool_lines: str, libpython: str) -> Optional[tuple[str, str]]:
    """(recorded, bundle-relative) install name of libpython from ``otool -L`` of the core, or None.

    macOS records the absolute install name of the libpython the core was linked with (an rpath
    only helps when it is ``@rpath/...``); the bundle's copy is reached from the core instead.
    """
    for line in otool_lines.splitlines()[1:]:
        name = line.strip().split(" (", 1)[0]
        if "libpython" in name or name.endswith("/Python"):
            wanted = f"@loader_path/../Resources/python/lib/{libpython}"
            return None if name == wanted else (name, wanted)
    return None


def relink_macos(binary: Path, libpython: str) -> None:
    """Point the (copied) core at the bundle's libpython and re-sign it ad hoc (the loader links no Python)."""
    listing = subprocess.run(["otool", "-L", str(binary)], capture_output=True, text=True, check=True).stdout
    change = macos_libpython_change(listing, libpython)
    if change:
        subprocess.run(["install_name_tool", "-change", *change, str(binary)], check=True)
        subprocess.run(["codesign", "--force", "--sign", "-", str(binary)], check=True)  # edits void the signature


def plan(args: argparse.Namespace) -> tuple[list[Group], list[tuple[Path, Path]], dict[str, Any], str]:
    """(groups to link-or-copy, (source, bundle path) always copied, build-info, python.cfg text)."""
    binary, core = plugin_binaries(args.build_dir)
    exclude = ["--exclude", "torch"] if args.torch == "existing" else []
    main = query(args.python, PROJECT, *project_requirements(), "--no-files", PROJECT, *exclude)
    torch_info, torch = torch_sources(args, main)
    missing = [n for n in project_requirements() if canonical(n) not in main["distributions"]
               and not (n == "torch" and exclude)]
    if missing:
        raise BuildError(f"{args.python} lacks {', '.join(missing)}: run 'make setup' (pip install -e .)")
    if not main["libpython"]:
        raise BuildError(f"{args.python} has no shared libpython (build Python with --enable-shared)")
    site = RES / "python" / site_dir(main)
    groups = stdlib_groups(main) + dist_groups(main, set(), site)
    if torch_info is not main:  # --torch existing: torch and what only it needs, from the other interpreter
        groups += dist_groups(torch_info, set(main["distributions"]), site)
    libpython = Path(main["libpython"])
    # Windows: pythonXY.dll beside the core, found because the loader loads the core with
    # LOAD_WITH_ALTERED_SEARCH_PATH; elsewhere the core's rpath points at Resources/python/lib.
    lib_dst = binary.parent.relative_to(args.build_dir / BUNDLE) if main["platform"] == "win32" else RES / "python" / "lib"
    groups.append(Group(libpython.parent, lib_dst, (libpython.name,)))
    copied = [(binary, binary.relative_to(args.build_dir / BUNDLE)), (core, core.relative_to(args.build_dir / BUNDLE))]
    server = binary.parent / SERVER_NAME
    if server.is_file():  # DEFLICKER_SERVER=child (or auto in a host with its own torch or Python)
        copied.append((server, server.relative_to(args.build_dir / BUNDLE)))
    plist = args.build_dir / BUNDLE / "Contents" / "Info.plist"
    if plist.exists():
        copied.append((plist, Path("Contents/Info.plist")))
    package = project_files()
    if args.link:
        groups.append(Group(ROOT / "model", site, tuple(rel for _, rel in package)))
    else:
        copied += [(src, site / rel) for src, rel in package]
    for folder in HOST_SOURCES:
        copied += [(p, RES / "hosts" / p.name) for p in sorted((HERE / folder).glob("*.py"))]
    info = {**plugin_identity(args.build_dir), "package_version": package_version(), "python": main["version"],
            "platform": main["platform"], "torch": {"mode": args.torch, "from": torch_info["executable"], **torch},
            "libpython": libpython.name, "binary": copied[0][1].as_posix(), "core": copied[1][1].as_posix(),
            "server": copied[2][1].as_posix() if server.is_file() else None,
            "link": args.link or "copy", "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return groups, copied, info, python_cfg(main)


def build(args: argparse.Namespace) -> Path:
    """Assemble the bundle at args.output (replaced atomically) and return its path."""
    groups, copied, info, cfg = plan(args)
    out: Path = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = staging_dir(out, "build")
    try:
        mode = args.link or "copy"
        counts = place_all(group_pairs(groups, staged, mode), mode)
        place_all(((s, staged / d) for s, d in copied), "copy")
        if info["platform"] == "darwin":
            for linked in (info["core"], info["server"]):
                if linked:
                    relink_macos(staged / linked, info["libpython"])
        res = staged / RES
        (res / "python.cfg").write_text(cfg)
        info["files"] = {k: v for k, v in counts.items() if v}
        (res / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
        swap_in(staged, out)
    except BaseException:
        remove_tree(staged)
        raise
    print(f"built {out} ({sum(counts.values()) + len(copied)} entries; torch {info['torch']['version']}"
          f"{' CUDA ' + str(info['torch']['cuda']) if info['torch']['cuda'] else ' CPU'}; {info['link']})")
    return out


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="build_bundle.py", description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build", help="cmake build dir (default: build)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="bundle to write (default: BUILD/dist/" + BUNDLE + ")")
    default_python = ROOT / ".venv" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    parser.add_argument("--python", default=str(default_python if default_python.exists() else sys.executable),
                        help="interpreter whose packages are shipped (default: the project's .venv)")
    parser.add_argument("--torch", choices=("cpu", "existing"), default="cpu", help="CPU torch, or an existing (CUDA) one")
    parser.add_argument("--torch-python", help="with --torch existing: the interpreter whose torch is shipped")
    parser.add_argument("--link", nargs="?", const="hard", choices=MODES[1:], default=None,
                        help="dev/test builds: hard-link files (symlink across file systems), or symlink them")
    args = parser.parse_args(argv)
    args.build_dir = args.build_dir.resolve()
    args.output = (args.output or args.build_dir / "dist" / BUNDLE).resolve()
    if args.output.name != BUNDLE:
        parser.error(f"the bundle must be named {BUNDLE} (OFX hosts match the bundle and binary names)")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    try:
        build(parse_args(argv))
    except BuildError as e:
        print(f"build_bundle: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"build_bundle: error: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
