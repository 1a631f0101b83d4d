"""Bundle assembly (installers/build_bundle.py) and install/uninstall (installers/install.py).

The bundle is built once per module from the cmake build (``make bundle``) with ``--link
symlink`` so it takes a second, installed into a temporary root, and loaded by the test host
(build/tests/host/ofxhost) with a clean environment (PATH, HOME, DEFLICKER_CACHE_DIR only): the
render must equal ``deflicker run`` and the plugin's log must show a sys.path entirely inside the
installed bundle. Uninstalling must leave the root empty.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _clips import flicker_clip
from test_ofx_host import BUNDLE as BUILT_BUNDLE, HOST, built, decode, write_clip

ROOT = Path(__file__).resolve().parents[1]
INSTALLERS = ROOT / "installers"
PY = sys.executable
NAME = "Deflicker.ofx.bundle"


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
    binary = next((bundle / "Contents").glob("*/Deflicker.ofx"))
    assert not binary.is_symlink(), "the plugin binary must be a real copy"
    if sys.platform.startswith("linux"):
        ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        libpython = next(line for line in ldd.splitlines() if "libpython" in line).split("=>")[1].split("(")[0]
        assert Path(os.path.normpath(libpython.strip())).parent == bundle / "Contents" / "Resources" / "python" / "lib", ldd


def test_build_refusals_are_one_line(tmp_path):
    proc = tool("build_bundle.py", "--build-dir", tmp_path, "-o", tmp_path / NAME)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "run 'make bundle' first" in proc.stderr
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
    out = tmp_path / "out.mkv"
    render = subprocess.run([str(built(HOST)), "render", str(installed(prefix)), str(clip), "-o", str(out)],
                            capture_output=True, text=True, env=clean, timeout=300)
    assert render.returncode == 0, render.stderr[-3000:]
    np.testing.assert_array_equal(decode(out)[..., :3], decode(ref)[..., :3])
    log = next(installed(prefix).glob("Contents/*/deflicker-ofx.log")).read_text()
    line = next(x for x in log.splitlines() if "started embedded Python" in x)
    entries = eval(line.split("sys.path = ", 1)[1])  # a Python list literal, as the bridge logs it
    assert entries and all(e.startswith(str(installed(prefix))) for e in entries), line

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
        "item = FakeTimelineItem('shot', FakeMediaPoolItem('/media/shot.mov', 8), 0, 8, nodes=[['Deflicker']])\n"
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


def test_user_install_prints_the_plugin_path_to_export(bundle, prefix):
    proc = tool("install.py", "install", "--bundle", bundle, "--prefix", prefix, "--user")
    assert proc.returncode == 0, proc.stderr
    folder = next(prefix.rglob(NAME)).parent
    assert folder.name == "Plugins" and folder.parent.name == "OFX" and "usr" not in folder.relative_to(prefix).parts
    assert f'export OFX_PLUGIN_PATH="{folder}' in proc.stdout, proc.stdout
    assert tool("install.py", "uninstall", "--prefix", prefix, "--user").returncode == 0
    assert not prefix.exists()


def test_refuses_a_foreign_bundle_and_a_missing_one(bundle, prefix, tmp_path):
    installed(prefix).mkdir(parents=True)
    proc = tool("install.py", "install", "--bundle", bundle, "--prefix", prefix)
    assert proc.returncode == 1 and "this installer did not put it there" in proc.stderr and proc.stderr.count("\n") == 1
    proc = tool("install.py", "uninstall", "--prefix", prefix)
    assert proc.returncode == 1 and "remove it by hand" in proc.stderr and installed(prefix).exists()
    proc = tool("install.py", "install", "--bundle", tmp_path / "nothing" / NAME, "--prefix", tmp_path / "r2")
    assert proc.returncode == 3 and proc.stderr.startswith("install: error: no Deflicker bundle at")


def test_refuses_without_permission_in_one_line(bundle, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:
        locked.chmod(0o555)
        unlock = lambda: locked.chmod(0o755)  # noqa: E731
    elif subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode == 0:
        unlock = lambda: subprocess.run(["chattr", "-i", str(locked)], check=True)  # noqa: E731
    else:
        pytest.skip("running as root on a file system without chattr +i: cannot make a folder unwritable")
    try:
        proc = tool("install.py", "install", "--bundle", bundle, "--prefix", locked)
        assert proc.returncode == 77, proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(
            f"install: error: no permission to write {locked / 'usr' / 'OFX' / 'Plugins'}"), proc.stderr
        assert not any(locked.iterdir())
    finally:
        unlock()


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
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "installers"))
    try:
        from install_paths import locations
    finally:
        sys.path.pop(0)
    common = r"D:\Common Files"
    env = {"CommonProgramFiles": common, "LOCALAPPDATA": r"D:\Users\me\AppData\Local"}
    assert str(locations("win32", user=False, env=env).plugins) == str(Path(common) / "OFX" / "Plugins")
    assert str(locations("darwin", user=False, env={}).plugins) == "/Library/OFX/Plugins"
    assert str(locations("linux", user=False, env={}).plugins) == "/usr/OFX/Plugins"
    user = locations("darwin", user=True, home=tmp_path, env={})
    assert user.plugins == tmp_path / "Library" / "OFX" / "Plugins" and user.user
    rooted = locations("linux", user=False, prefix=tmp_path, env={})
    assert rooted.plugins == tmp_path / "usr" / "OFX" / "Plugins"
