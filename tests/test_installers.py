"""Bundle assembly (installers/build_bundle.py) and install/uninstall (installers/install.py).

The bundle is built once per module from the cmake build (``make bundle``) with ``--link
symlink`` so it takes a second, installed into a temporary root, and loaded by the test host
(build/tests/host/ofxhost) with a clean environment (PATH, HOME, DEFLICKER_CACHE_DIR only): the
render must equal ``deflicker run`` and the plugin's log must show a sys.path entirely inside the
installed bundle. Uninstalling must leave the root empty. The Linux, macOS and Windows layouts are
each installed into a temporary root (``--platform``), loaded there by the test host over the fake
server, and uninstalled.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from _clips import flicker_clip
from test_ofx_host import BUNDLE as BUILT_BUNDLE, HOST, built, decode, write_clip

ROOT = Path(__file__).resolve().parents[1]
INSTALLERS = ROOT / "installers"
PY = sys.executable
NAME = "Deflicker.ofx.bundle"
sys.path.insert(0, str(INSTALLERS))
import install_paths  # noqa: E402
from build_bundle import macos_libpython_change  # noqa: E402

sys.path[:] = [p for p in sys.path if p != str(INSTALLERS)]  # build_bundle adds it too


def tool(script: str, *args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PY, str(INSTALLERS / script), *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A bundle built from the cmake build with --link symlink (a second, not a 1.6 GB copy)."""
    built(BUILT_BUNDLE)
    out = tmp_path_factory.mktemp("dist") / NAME
    proc = tool("build_bundle.py", "--build-dir", BUILT_BUNDLE.parent, "-o", out, "--link", "symlink")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def prefix(tmp_path) -> Path:
    """A fresh install root (not created yet)."""
    return tmp_path / "root"


def cfg_paths(bundle: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    res = bundle / "Contents" / "Resources"
    for line in (res / "python.cfg").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = (s.strip() for s in line.split("=", 1))
            assert not Path(value).is_absolute(), f"python.cfg names an absolute path: {line}"
            out.setdefault(key, []).append(res / value)
    return out


def test_bundle_is_self_contained(bundle):
    paths = cfg_paths(bundle)
    assert all(p.is_dir() for ps in paths.values() for p in ps), paths
    site = paths["path"][0]
    for module in ("deflicker/engine.py", "deflicker/weights/filter.pt", "torch/__init__.py", "numpy/__init__.py",
                   "cv2", "av"):
        assert (site / module).exists(), module
    for dev_only in ("pytest", "mypy", "pybind11", "fusionscript-stubs"):
        assert not (site / dev_only).exists(), f"{dev_only} (a dev tool) was shipped"
    info = json.loads((bundle / "Contents" / "Resources" / "build-info.json").read_text())
    assert info["torch"]["mode"] == "cpu" and info["torch"]["cuda"] is None and info["link"] == "symlink"
    assert info["identifier"] == "com.atlasdeflicker.Deflicker" and info["python"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
    hosts = bundle / "Contents" / "Resources" / "hosts"
    assert {p.name for p in hosts.glob("*.py")} >= {"deflicker_resolve.py", "deflicker_nuke.py", "menu.py",
                                                    "deflicker_bootstrap.py"}
    binary = next((bundle / "Contents").glob("*/Deflicker.ofx"))  # the loader
    core = bundle / info["core"]
    assert info["binary"] == binary.relative_to(bundle).as_posix() and core.parent == binary.parent
    assert not binary.is_symlink() and not core.is_symlink(), "the plugin binaries must be real copies"
    if sys.platform.startswith("linux"):
        assert "libpython" not in subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        server = bundle / info["server"]  # the child-process model server (DEFLICKER_SERVER=child), beside the core
        assert server.parent == binary.parent and not server.is_symlink() and os.access(server, os.X_OK), info
        for linked in (core, server):
            ldd = subprocess.run(["ldd", str(linked)], capture_output=True, text=True).stdout
            libpython = next(line for line in ldd.splitlines() if "libpython" in line).split("=>")[1].split("(")[0]
            assert Path(os.path.normpath(libpython.strip())).parent == bundle / "Contents" / "Resources" / "python" / "lib", ldd


def test_build_refusals_are_one_line(tmp_path):
    proc = tool("build_bundle.py", "--build-dir", tmp_path, "-o", tmp_path / NAME)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "run 'make bundle' first" in proc.stderr
    stale = tmp_path / "stale" / NAME / "Contents" / "Linux-x86-64" / "Deflicker.ofx"  # a loader without its core
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    proc = tool("build_bundle.py", "--build-dir", tmp_path / "stale", "-o", tmp_path / NAME)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no plugin core (deflicker_core.so|" in proc.stderr
    proc = tool("build_bundle.py", "--build-dir", BUILT_BUNDLE.parent, "-o", tmp_path / "Other.ofx.bundle")
    assert proc.returncode == 2 and "must be named Deflicker.ofx.bundle" in proc.stderr
    built(BUILT_BUNDLE)
    proc = tool("build_bundle.py", "--build-dir", BUILT_BUNDLE.parent, "-o", tmp_path / NAME, "--torch", "existing")
    assert proc.returncode == 2 and proc.stderr.strip() == \
        "build_bundle: error: --torch existing needs --torch-python PY (the interpreter whose torch to ship)"


def fake_dist(site: Path, name: str, version: str, requires: list[str]) -> None:
    """An installed distribution's metadata (no code), as pip would leave it."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                   + "".join(f"Requires-Dist: {r}\n" for r in requires))
    (info / "RECORD").write_text(f"{info.name}/METADATA,,\n")


def test_cpu_choice_refuses_a_cuda_torch_and_existing_ships_it(tmp_path):
    built(BUILT_BUNDLE)
    venv = tmp_path / "cuda-venv"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    fake_dist(site, "atlas-deflicker", "0.1.0", ["torch>=2.1", "pytest; extra == 'dev'"])
    fake_dist(site, "torch", "2.5.1+cu124", ["nvidia-cuda-runtime-cu12==12.4.127; platform_system == 'Linux'"])
    fake_dist(site, "nvidia-cuda-runtime-cu12", "12.4.127", [])
    proc = tool("build_bundle.py", "--build-dir", BUILT_BUNDLE.parent, "-o", tmp_path / NAME, "--python", python)
    assert proc.returncode == 2 and "is a CUDA build (2.5.1+cu124)" in proc.stderr, proc.stderr
    proc = tool("build_bundle.py", "--build-dir", BUILT_BUNDLE.parent, "-o", tmp_path / NAME, "--link", "symlink",
                "--torch", "existing", "--torch-python", python)
    assert proc.returncode == 0, proc.stderr
    info = json.loads((tmp_path / NAME / "Contents" / "Resources" / "build-info.json").read_text())
    assert info["torch"]["version"] == "2.5.1+cu124" and info["torch"]["cuda"] == "124"
    assert info["torch"]["from"] == str(python) and info["torch"]["cuda_packages"] == ["nvidia-cuda-runtime-cu12"]
    site_out = cfg_paths(tmp_path / NAME)["path"][0]
    assert (site_out / "nvidia_cuda_runtime_cu12-12.4.127.dist-info" / "METADATA").exists()
    assert (site_out / "torch-2.5.1+cu124.dist-info").exists() and not list(site_out.glob("torch-2.13*"))


# ------------------------------------------------------------------ install, render, uninstall


def installed(prefix: Path) -> Path:
    return prefix / "usr" / "OFX" / "Plugins" / NAME


def every_path(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_installed_bundle_renders_in_a_clean_environment_and_uninstalls_cleanly(bundle, prefix, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    proc = tool("install.py", "install", "--bundle", bundle, "--prefix", prefix)
    assert proc.returncode == 0 and proc.stdout.startswith(f"installed {installed(prefix)}"), proc.stderr
    again = tool("install.py", "install", "--bundle", bundle, "--prefix", prefix)
    assert again.returncode == 0 and "already this build: kept" in again.stdout, again.stderr
    manifest = json.loads((installed(prefix) / "Contents/Resources/install-manifest.json").read_text())
    assert manifest["dirs"][0] == str(prefix) and manifest["source"] == str(bundle)

    _, frames = flicker_clip(8, 48, 64, seed=7)
    clip = write_clip(tmp_path / "clip.mkv", frames)
    ref = tmp_path / "ref.mkv"
    cli = subprocess.run([PY, "-m", "deflicker", "run", str(clip), "-o", str(ref)], capture_output=True, text=True,
                         env={**os.environ, "DEFLICKER_CACHE_DIR": str(tmp_path / "cli-cache")}, timeout=300)
    assert cli.returncode == 0, cli.stderr
    ffmpeg_dir = str(Path(shutil.which("ffmpeg") or "/usr/bin/ffmpeg").parent)
    clean = {"PATH": os.pathsep.join([ffmpeg_dir, "/usr/bin", "/bin"]), "HOME": str(home),
             "DEFLICKER_CACHE_DIR": str(tmp_path / "plugin-cache")}
    for mode in ("embedded", "child"):  # the child: the installed deflicker_server, the bundle's Python
        out = tmp_path / f"{mode}.mkv"
        render = subprocess.run([str(built(HOST)), "render", str(installed(prefix)), str(clip), "-o", str(out)],
                                capture_output=True, text=True, env={**clean, "DEFLICKER_SERVER": mode}, timeout=300)
        assert render.returncode == 0, render.stderr[-3000:]
        np.testing.assert_array_equal(decode(out)[..., :3], decode(ref)[..., :3])
    log = next(installed(prefix).glob("Contents/*/deflicker-ofx.log")).read_text()
    lines = [x for x in log.splitlines() if "started embedded Python" in x]
    assert len(lines) == 2, log  # in the host process, then in the child server
    for line in lines:
        entries = eval(line.split("sys.path = ", 1)[1])  # a Python list literal, as the bridge logs it
        assert entries and all(e.startswith(str(installed(prefix))) for e in entries), line
    assert "started the analysis server, pid " in log, log

    proc = tool("install.py", "uninstall", "--prefix", prefix)
    assert proc.returncode == 0 and proc.stdout.strip() == f"removed {installed(prefix)}", proc.stderr
    assert not prefix.exists(), every_path(prefix)
    proc = tool("install.py", "uninstall", "--prefix", prefix)
    assert proc.returncode == 0 and proc.stdout.startswith("nothing installed at"), proc.stdout


def test_resolve_and_nuke_entries_are_added_and_removed(bundle, prefix):
    nuke_init = prefix.joinpath(*Path.home().parts[1:], ".nuke", "init.py")
    nuke_init.parent.mkdir(parents=True)
    nuke_init.write_text("# my own Nuke setup\nimport os\n")
    before = every_path(prefix)
    for _ in range(2):  # idempotent: the second run changes nothing
        proc = subprocess.run(["sh", str(INSTALLERS / "install_linux.sh"), "install", "--bundle", str(bundle),
                               "--prefix", str(prefix), "--resolve", "--nuke"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    text = nuke_init.read_text()
    assert text.startswith("# my own Nuke setup\nimport os\n") and text.count("nuke.pluginAddPath(") == 1, text
    scripts = prefix / "opt" / "resolve" / "Fusion" / "Scripts" / "Utility"
    entries = sorted(p.name for p in scripts.glob("*.py"))
    assert entries == ["Deflicker - Analyse Timeline.py", "Deflicker - Reanalyze Current Clip.py", "Deflicker - Render.py"]

    # A menu entry runs inside "Resolve" (the stand-in) on the installed bundle's helpers and packages.
    runner = (
        "import sys; sys.path.insert(0, sys.argv[2])\n"
        "from _fake_resolve import *\n"
        "item = FakeTimelineItem('shot', FakeMediaPoolItem('/media/shot.mov', 8), 0, 8, nodes=[['Atlas Deflicker']])\n"
        "g = {'resolve': FakeResolve(FakeProject(FakeTimeline('T', [[item]])))}\n"
        "code = open(sys.argv[1]).read().replace(\"main(['analyse']\", \"main(['list']\")\n"
        "exec(code, g)\n"
        "import deflicker, deflicker_resolve; print('FROM', deflicker.__file__, deflicker_resolve.__file__)\n")
    proc = subprocess.run([PY, "-c", runner, str(scripts / "Deflicker - Analyse Timeline.py"), str(ROOT / "tests")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "V1 shot (/media/shot.mov frames 0-7)" in proc.stdout, proc.stdout + proc.stderr
    origin = proc.stdout.split("FROM ", 1)[1].split()
    assert all(p.startswith(str(installed(prefix))) for p in origin), origin

    proc = tool("install.py", "uninstall", "--prefix", prefix)
    assert proc.returncode == 0, proc.stderr
    assert nuke_init.read_text() == "# my own Nuke setup\nimport os\n"
    assert every_path(prefix) == before, set(every_path(prefix)) ^ set(before)


def test_refuses_a_foreign_bundle_and_a_missing_one(bundle, prefix, tmp_path):
    installed(prefix).mkdir(parents=True)
    proc = tool("install.py", "install", "--bundle", bundle, "--prefix", prefix)
    assert proc.returncode == 1 and "this installer did not put it there" in proc.stderr and proc.stderr.count("\n") == 1
    proc = tool("install.py", "uninstall", "--prefix", prefix)
    assert proc.returncode == 1 and "remove it by hand" in proc.stderr and installed(prefix).exists()
    proc = tool("install.py", "install", "--bundle", tmp_path / "nothing" / NAME, "--prefix", tmp_path / "r2")
    assert proc.returncode == 3 and proc.stderr.startswith("install: error: no Deflicker bundle at")
    other = "darwin" if sys.platform.startswith("linux") else "linux"
    proc = tool("install.py", "install", "--bundle", bundle, "--platform", other)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "layout on" in proc.stderr and \
        proc.stderr.strip().endswith("needs --prefix ROOT"), proc.stderr


@contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """``folder`` cannot be written to (mode 555, or chattr +i for root) for the duration."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        unlock = lambda: folder.chmod(0o755)  # noqa: E731
    elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        unlock = lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)  # noqa: E731
    else:
        pytest.skip("running as root on a file system without chattr +i: cannot make a folder unwritable")
    try:
        yield
    finally:
        unlock()


@pytest.mark.parametrize("platform", install_paths.PLATFORMS)
def test_refuses_without_permission_in_one_line(bundle, tmp_path, platform):
    locked = tmp_path / "locked"
    locked.mkdir()
    with unwritable(locked):
        proc = tool("install.py", "install", "--bundle", bundle, "--prefix", locked, "--platform", platform)
        assert proc.returncode == 77, proc.stderr
        plugins = install_paths.locations(platform, user=False, prefix=locked).plugins
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(
            f"install: error: no permission to write {plugins}"), proc.stderr
        assert not any(locked.iterdir())
    # Uninstalling from a plugin folder it may not change refuses too, and changes nothing.
    root = tmp_path / "root"
    assert tool("install.py", "install", "--bundle", bundle, "--prefix", root, "--platform", platform).returncode == 0
    plugins = install_paths.locations(platform, user=False, prefix=root).plugins
    before = every_path(root)
    with unwritable(plugins):
        proc = tool("install.py", "uninstall", "--prefix", root, "--platform", platform)
        assert proc.returncode == 77 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith(f"uninstall: error: no permission to write {plugins}"), proc.stderr
    assert every_path(root) == before
    assert tool("install.py", "uninstall", "--prefix", root, "--platform", platform).returncode == 0
    assert not root.exists()


# ------------------------------------------------------------------ installing as root trusts nothing it finds

MANIFEST = Path("Contents/Resources/install-manifest.json")


def install_here(bundle: Path, prefix: Path, home: Path, *more: object, umask: int = 0o022) -> subprocess.CompletedProcess:
    """install.py install into ``prefix`` with Resolve and Nuke entries, HOME=``home``, under ``umask``."""
    command = ["sh", "-c", f"umask {umask:03o}; exec \"$@\"", "sh", PY, str(INSTALLERS / "install.py"), "install",
               "--bundle", str(bundle), "--prefix", str(prefix), "--resolve", "--nuke", *map(str, more)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(home)})


def uninstall_here(prefix: Path, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PY, str(INSTALLERS / "install.py"), "uninstall", "--prefix", str(prefix)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(home)})


def nuke_init(prefix: Path, home: Path) -> Path:
    return prefix.joinpath(*home.parts[1:], ".nuke", "init.py")


def resolve_entry(prefix: Path) -> Path:
    return prefix / "opt" / "resolve" / "Fusion" / "Scripts" / "Utility" / "Deflicker - Render.py"


def modes(root: Path) -> dict[str, tuple[int, int]]:
    """(mode bits, owner) of every folder and file under ``root`` (itself included; links are not followed)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for path in [Path(dirpath)] + [Path(dirpath) / n for n in dirnames + filenames]:
            st = path.lstat()
            if not path.is_symlink():
                out[str(path.relative_to(root.parent))] = (st.st_mode & 0o7777, st.st_uid)
    return out


@pytest.mark.parametrize("link", [False, True], ids=["copy", "link"])
def test_installed_modes_are_set_never_copied_from_the_source(bundle, tmp_path, link):
    src = tmp_path / "src" / NAME
    shutil.copytree(bundle, src, symlinks=True)
    binary = next(src.glob("Contents/*/Deflicker.ofx"))
    binary.chmod(0o6777)  # setuid, setgid and world-writable
    (src / "Contents" / "Resources" / "python.cfg").chmod(0o666)
    (src / "Contents" / "Resources" / "hosts").chmod(0o3777)  # setgid, sticky, world-writable
    (src / "Contents").chmod(0o777)
    prefix, home = tmp_path / "root", tmp_path / "home"
    proc = install_here(src, prefix, home, *["--link"] * link, umask=0)  # an umask of 0 must not matter either
    assert proc.returncode == 0, proc.stderr
    got = modes(prefix)
    me = os.geteuid()
    wrong = {path: (f"{mode:04o}", uid) for path, (mode, uid) in got.items()
             if uid != me or mode not in (0o755, 0o644) or (mode == 0o644 and (prefix.parent / path).is_dir())}
    assert not wrong, wrong
    dst = installed(prefix)
    assert got[str(binary_of(dst).relative_to(prefix.parent))][0] == 0o755  # still an executable
    for entry in (dst / "Contents" / "Resources" / "python.cfg", dst / MANIFEST, resolve_entry(prefix), nuke_init(prefix, home)):
        assert got[str(entry.relative_to(prefix.parent))][0] == 0o644, entry
    assert binary.stat().st_mode & 0o7777 == 0o6777, "the source was changed"
    assert uninstall_here(prefix, home).returncode == 0 and not prefix.exists()


def binary_of(bundle: Path) -> Path:
    return next(bundle.glob("Contents/*/Deflicker.ofx"))


@pytest.mark.parametrize("forgery", ["owner", "writable", "folder", "garbage", "outside", "dotdot", "line", "file"])
def test_uninstall_refuses_a_manifest_it_cannot_trust(bundle, tmp_path, forgery):
    prefix, home = tmp_path / "root", tmp_path / "home"
    assert install_here(bundle, prefix, home).returncode == 0
    path = installed(prefix) / MANIFEST
    manifest = json.loads(path.read_text())
    victim = tmp_path / "victim" / ".nuke" / "init.py"  # where the installer writes, but outside the install root
    victim.parent.mkdir(parents=True)
    nuke_line = manifest["lines"][0]["line"]
    victim.write_text("# someone's own setup\n" + nuke_line)
    ours = nuke_init(prefix, home)
    why = {"owner": "is owned by uid 1000, not by root or you: not trusted",
           "writable": "is writable by its group or others (mode 0646): not trusted",
           "folder": "Resources is writable by its group or others (mode 0777): not trusted",
           "garbage": "install-manifest.json: not valid JSON: not trusted",
           "outside": f"names {victim}, outside the install root {prefix}: not trusted",
           "dotdot": "not a clean absolute path: not trusted",
           "line": f"names {ours}, with a line the installer does not write: not trusted",
           "file": "not a file the installer writes: not trusted"}[forgery]
    if forgery == "owner":
        if os.geteuid() != 0:
            pytest.skip("needs root to give the manifest to another user")
        os.chown(path, 1000, 1000)
    elif forgery == "writable":
        path.chmod(0o646)
    elif forgery == "folder":
        path.parent.chmod(0o777)
    elif forgery == "garbage":
        path.write_text('{"dirs": [')
    else:
        if forgery == "outside":
            manifest["lines"].append({"file": str(victim), "line": nuke_line})
        elif forgery == "dotdot":
            manifest["files"].append(f"{prefix}/../victim/.nuke/init.py")
        elif forgery == "line":
            manifest["lines"].append({"file": str(ours), "line": "import os\n"})
        else:
            manifest["files"].append(str(installed(prefix) / "Contents" / "Resources" / "python.cfg"))
        path.write_text(json.dumps(manifest))
    before, victim_text = every_path(prefix), victim.read_text()
    ours_text = ours.read_text()
    proc = uninstall_here(prefix, home)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("uninstall: error: "), \
        proc.stdout + proc.stderr
    assert why in proc.stderr, proc.stderr
    assert every_path(prefix) == before and victim.read_text() == victim_text and ours.read_text() == ours_text


@pytest.mark.parametrize("target", ["resolve", "nuke"])
def test_install_never_writes_through_a_planted_link(bundle, tmp_path, target):
    prefix, home = tmp_path / "root", tmp_path / "home"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = resolve_entry(prefix) if target == "resolve" else nuke_init(prefix, home)
    link.parent.mkdir(parents=True)
    link.symlink_to(victim)
    proc = install_here(bundle, prefix, home)
    assert proc.returncode == 1 and proc.stderr == f"install: error: {link} is a symbolic link: not followed " \
        "(remove it, then run the installer again)\n", proc.stderr
    assert victim.read_text() == "precious\n" and not installed(prefix).exists() and link.is_symlink()


def test_uninstall_never_follows_a_link_put_in_place_of_an_installed_file(bundle, tmp_path):
    prefix, home = tmp_path / "root", tmp_path / "home"
    assert install_here(bundle, prefix, home).returncode == 0
    entry, init = resolve_entry(prefix), nuke_init(prefix, home)
    victims = {entry: tmp_path / "entry-victim.py", init: tmp_path / "init-victim.py"}
    for path, victim in victims.items():
        victim.write_bytes(path.read_bytes() + b"precious\n")  # carries the installer's mark and line
        path.unlink()
        path.symlink_to(victim)
    texts = {victim: victim.read_text() for victim in victims.values()}
    proc = uninstall_here(prefix, home)  # init.py's line cannot be removed through the link: refused
    assert proc.returncode == 1 and proc.stderr == f"uninstall: error: {init} is a symbolic link: not followed " \
        "(remove it, then run the installer again)\n", proc.stderr
    assert installed(prefix).is_dir() and all(v.read_text() == t for v, t in texts.items())
    init.unlink()
    proc = uninstall_here(prefix, home)
    assert proc.returncode == 0, proc.stderr
    assert not os.path.lexists(entry), "a link in place of a menu entry is removed (as a link)"
    assert all(v.read_text() == t for v, t in texts.items()) and not prefix.exists(), every_path(prefix)


@pytest.mark.skipif(os.geteuid() != 0, reason="what the wrappers run as root")
@pytest.mark.parametrize("wrapper", ["install_linux.sh", "install_macos.sh"])
def test_wrappers_as_root_run_no_python_or_module_a_user_could_plant(bundle, tmp_path, wrapper):
    marker = tmp_path / "ran-planted-code"
    planted = tmp_path / "user-bin"  # first on PATH, but a user's folder (like /opt/homebrew/bin)
    planted.mkdir()
    (planted / "python3").write_text(f"#!/bin/sh\ntouch {marker}\nexec {PY} \"$@\"\n")
    (planted / "python3").chmod(0o755)
    os.chown(planted, 1000, 1000)
    modules = tmp_path / "user-modules"  # PYTHONPATH: a module that shadows the standard library's
    modules.mkdir()
    (modules / "hashlib.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(9)\n")
    env = {**os.environ, "PATH": f"{planted}:{os.environ['PATH']}", "PYTHONPATH": str(modules), "HOME": str(tmp_path)}
    prefix = tmp_path / "root"
    proc = subprocess.run(["sh", str(INSTALLERS / wrapper), "install", "--bundle", str(bundle), "--prefix", str(prefix)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists(), "the installer ran code a user could have planted"
    os.chown(planted, 0, 0)
    planted.chmod(0o777)  # root's folder, but anyone may change it: as untrusted
    proc = subprocess.run(["sh", str(INSTALLERS / wrapper), "uninstall", "--prefix", str(prefix)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and not marker.exists() and not prefix.exists(), proc.stderr


#: Per OS: the wrapper that installs it (None: install.py itself, as install_windows.ps1 does), and the
#: plugin folder system wide (from the root) and per user (from HOME).
LAYOUTS = {
    "linux": ("install_linux.sh", "usr/OFX/Plugins", ".local/share/OFX/Plugins"),
    "darwin": ("install_macos.sh", "Library/OFX/Plugins", "Library/OFX/Plugins"),
    "win32": (None, "Program Files/Common Files/OFX/Plugins", "AppData/Local/OFX/Plugins"),
}


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory) -> Path:
    _, frames = flicker_clip(3, 48, 64, seed=3)
    return write_clip(tmp_path_factory.mktemp("small") / "small.mkv", frames)


@pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
@pytest.mark.parametrize("platform", LAYOUTS)
def test_each_os_layout_installs_loads_and_uninstalls(bundle, prefix, tmp_path, small_clip, platform, user):
    wrapper, system_dir, user_dir = LAYOUTS[platform]
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_DATA_HOME", "LOCALAPPDATA", "APPDATA", "PROGRAMDATA", "CommonProgramFiles")}
    env["HOME"] = str(home)
    command = ["sh", str(INSTALLERS / wrapper)] if wrapper else [PY, str(INSTALLERS / "install.py")]
    options = ["--prefix", str(prefix)] + ["--user"] * user + ([] if wrapper else ["--platform", platform])

    def installer(action: str, *more: str) -> subprocess.CompletedProcess:
        return subprocess.run(command + [action, *options, *more], capture_output=True, text=True, env=env, timeout=300)

    folder = prefix.joinpath(*home.parts[1:], user_dir) if user else prefix / system_dir
    first = installer("install", "--bundle", str(bundle), "--resolve", "--nuke")
    assert first.returncode == 0 and first.stdout.startswith(f"installed {folder / NAME}\n"), first.stdout + first.stderr
    paths = every_path(prefix)
    again = installer("install", "--bundle", str(bundle), "--resolve", "--nuke")
    assert again.returncode == 0 and "already this build: kept" in again.stdout, again.stderr
    assert every_path(prefix) == paths  # idempotent: nothing added, nothing doubled
    nuke_init = prefix.joinpath(*home.parts[1:], ".nuke", "init.py")
    assert nuke_init.read_text().count("nuke.pluginAddPath(") == 1
    entries = sorted(prefix.rglob("Deflicker - *.py"))
    assert len(entries) == 3 and entries[0].parent.parts[-3:] == ("Fusion", "Scripts", "Utility"), entries
    hint = 'setx OFX_PLUGIN_PATH "' if platform == "win32" else 'export OFX_PLUGIN_PATH="'
    assert (f"{hint}{folder}" in first.stdout) == user, first.stdout

    # The test host loads the installed bundle (over the fake server): Python from its own python.cfg.
    installed_bundle = folder / NAME
    clean = {"PATH": os.pathsep.join([str(Path(shutil.which("ffmpeg") or "/usr/bin/ffmpeg").parent), "/usr/bin", "/bin"]),
             "HOME": str(home), "DEFLICKER_OFX_SERVER": "_plugin_fake_server", "DEFLICKER_OFX_EXTRA_PATH": str(ROOT / "tests")}
    render = subprocess.run([str(built(HOST)), "render", str(installed_bundle), str(small_clip), "--discard"],
                            capture_output=True, text=True, env=clean, timeout=120)
    assert render.returncode == 0, render.stderr[-3000:]
    log = next(installed_bundle.glob("Contents/*/deflicker-ofx.log")).read_text()
    assert f"python.cfg from the host's OfxPluginPropFilePath: {installed_bundle}/Contents/Resources/python.cfg" in log
    line = next(x for x in log.splitlines() if "started embedded Python" in x)
    entries = eval(line.split("sys.path = ", 1)[1])[1:]  # after DEFLICKER_OFX_EXTRA_PATH
    assert entries and all(e.startswith(str(installed_bundle)) for e in entries), line

    gone = installer("uninstall")
    assert gone.returncode == 0 and gone.stdout.strip() == f"removed {installed_bundle}", gone.stdout + gone.stderr
    assert not prefix.exists(), every_path(prefix)
    assert installer("uninstall").stdout.startswith("nothing installed at")


def test_macos_core_is_pointed_at_the_bundles_libpython():
    framework = ("Contents/MacOS/deflicker_core.dylib:\n"
                 "\t/Library/Frameworks/Python.framework/Versions/3.11/Python (compatibility version 3.11.0, current version 3.11.0)\n"
                 "\t/usr/lib/libc++.1.dylib (compatibility version 1.0.0, current version 1700.255.0)\n")
    assert macos_libpython_change(framework, "libpython3.11.dylib") == (
        "/Library/Frameworks/Python.framework/Versions/3.11/Python", "@loader_path/../Resources/python/lib/libpython3.11.dylib")
    pyenv = "deflicker_core.dylib:\n\t/Users/me/.pyenv/versions/3.11.7/lib/libpython3.11.dylib (compatibility version 3.11.0)\n"
    assert macos_libpython_change(pyenv, "libpython3.11.dylib")[0] == "/Users/me/.pyenv/versions/3.11.7/lib/libpython3.11.dylib"
    done = "deflicker_core.dylib:\n\t@loader_path/../Resources/python/lib/libpython3.11.dylib (compatibility version 3.11.0)\n"
    assert macos_libpython_change(done, "libpython3.11.dylib") is None
    assert macos_libpython_change("deflicker_core.dylib:\n\t/usr/lib/libSystem.B.dylib (compatibility version 1.0.0)\n", "x") is None


def test_hard_links_fall_back_to_symlinks_across_file_systems(tmp_path, monkeypatch):
    sys.path.insert(0, str(INSTALLERS))
    import errno

    import bundle_files

    src = tmp_path / "a.txt"
    src.write_text("x")
    assert bundle_files.place(src, tmp_path / "out" / "hard.txt", "hard") == "hard"
    assert (tmp_path / "out" / "hard.txt").stat().st_ino == src.stat().st_ino

    def cross_device(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(bundle_files.os, "link", cross_device)
    assert bundle_files.place(src, tmp_path / "out" / "sym.txt", "hard") == "symlink"
    assert (tmp_path / "out" / "sym.txt").resolve() == src.resolve()


def test_default_plugin_folders_per_os(tmp_path):
    locations = install_paths.locations
    common = r"D:\Common Files"
    env = {"CommonProgramFiles": common, "LOCALAPPDATA": r"D:\Users\me\AppData\Local"}
    assert str(locations("win32", user=False, env=env).plugins) == r"D:\Common Files\OFX\Plugins"
    assert locations("win32", user=False, prefix=tmp_path, env=env).plugins == tmp_path / "Common Files" / "OFX" / "Plugins"
    assert str(locations("darwin", user=False, env={}).plugins) == "/Library/OFX/Plugins"
    assert str(locations("linux", user=False, env={}).plugins) == "/usr/OFX/Plugins"
    user = locations("darwin", user=True, home=tmp_path, env={})
    assert user.plugins == tmp_path / "Library" / "OFX" / "Plugins" and user.user
    rooted = locations("linux", user=False, prefix=tmp_path, env={})
    assert rooted.plugins == tmp_path / "usr" / "OFX" / "Plugins"
