"""A farm's shared analysis cache: two users, one group-writable setgid folder (the README's
recommendation), each render a subprocess running as its own unprivileged uid; and a full disk.

The suite runs as root; the renders drop to two uids sharing one gid. The Python install may sit
where those users cannot read (root's home), so the driver imports everything a run needs
before it drops its privileges, then runs the ``deflicker`` command line.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from deflicker.cli.main import main
from deflicker.io.files import open_clip, write_clip
from tests._clips import flicker_clip

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="emulating two users needs root (setuid to two uids)")

GROUP = 4242
ALICE, BOB = 4301, 4302
MODEL = str(Path(__file__).resolve().parents[1] / "model")

_DRIVER = """
import importlib, os, pkgutil, sys
sys.path.insert(0, sys.argv[1])
uid, gid = int(sys.argv[2]), int(sys.argv[3])
import deflicker
for module in pkgutil.walk_packages(deflicker.__path__, "deflicker."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
import concurrent.futures, encodings.cp437, tqdm, torch, av
os.setgroups([gid])
os.setgid(gid)
os.setuid(uid)
os.umask(0o022)
from deflicker.cli.main import main
sys.exit(main(sys.argv[4:]))
"""


@pytest.fixture(scope="module")
def farm():
    """A folder every user may enter, holding the driver, a clip and a home per user."""
    root = Path(tempfile.mkdtemp(prefix="deflicker-farm-"))
    try:
        root.chmod(0o755)
        (root / "driver.py").write_text(_DRIVER)
        write_clip(root / "clip.mkv", flicker_clip(n=8)[1], fps=24.0, bit_depth=16, codec="ffv1")
        (root / "clip.mkv").chmod(0o644)
        for uid in (ALICE, BOB):
            home = root / f"home{uid}"
            home.mkdir()
            os.chown(home, uid, GROUP)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _shared_folder(farm: Path, name: str, mode: int) -> Path:
    folder = farm / name
    folder.mkdir()
    os.chown(folder, 0, GROUP)
    folder.chmod(mode)
    return folder


def as_user(farm: Path, uid: int, *args: str) -> subprocess.CompletedProcess:
    """``deflicker -v ARGS`` run as ``uid`` in the shared group."""
    env = {k: v for k, v in os.environ.items() if k != "DEFLICKER_CACHE_DIR"}
    env.update(HOME=str(farm / f"home{uid}"), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(farm / "driver.py"), MODEL, str(uid), str(GROUP), "-v", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def _run(farm: Path, uid: int, cache: Path, out: str) -> subprocess.CompletedProcess:
    output = farm / f"home{uid}" / out
    return as_user(farm, uid, "run", str(farm / "clip.mkv"), "-o", str(output), "--analysis-size", "64",
                   "--cache-dir", str(cache))


def _analyse(farm: Path, uid: int, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    return as_user(farm, uid, "analyze", str(farm / "clip.mkv"), "--analysis-size", "64", "--cache-dir", str(cache),
                   *extra)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr[-2000:]
    return proc.stderr


def _frames(path: Path) -> np.ndarray:
    with open_clip(path) as clip:
        return np.stack([clip[t] for t in range(len(clip))])


def test_two_users_share_a_group_cache_folder(farm):
    cache = _shared_folder(farm, "shared", 0o2775)
    _ok(_run(farm, ALICE, cache, "alice.mkv"))
    entries = list(cache.glob("*.npz"))
    assert len(entries) == 1
    entry = entries[0]
    assert entry.stat().st_mode & 0o060 == 0o060 and entry.stat().st_gid == GROUP
    assert "loaded from" in _ok(_run(farm, BOB, cache, "bob.mkv"))  # Bob renders from Alice's analysis
    assert np.array_equal(_frames(farm / f"home{ALICE}" / "alice.mkv"), _frames(farm / f"home{BOB}" / "bob.mkv"))
    _ok(_analyse(farm, BOB, cache, "--force"))  # Reanalyze: Bob takes the lock after Alice and replaces her entry
    assert entry.stat().st_uid == BOB and entry.stat().st_mode & 0o060 == 0o060
    assert "loaded from" in _ok(_analyse(farm, ALICE, cache))  # and Alice reads Bob's
    assert not list(cache.glob("*.lock")) and not list(cache.glob(".*"))


def test_a_sticky_folder_and_an_unreadable_entry_cost_a_warning_only(farm):
    """In a sticky folder nobody replaces or removes another user's files; an entry Bob may not
    read is neither deleted nor fatal: Bob's run analyses in memory, warns, and renders."""
    cache = _shared_folder(farm, "sticky", 0o3775)
    _ok(_analyse(farm, ALICE, cache))
    entry = next(cache.glob("*.npz"))
    entry.chmod(0o600)  # as if Alice's umask were 077
    before = entry.read_bytes()
    err = _ok(_run(farm, BOB, cache, "bob-sticky.mkv"))
    assert "cannot read the cache entry" in err and "cannot write the analysis cache" in err
    assert len(_frames(farm / f"home{BOB}" / "bob-sticky.mkv")) == 8
    assert entry.read_bytes() == before and entry.stat().st_uid == ALICE
    err = _ok(_analyse(farm, BOB, cache, "--force"))
    assert "cannot remove the cache entry" in err and entry.read_bytes() == before


def test_a_full_cache_never_fails_a_run(tmp_path, caplog):
    """A cache on a 16 kB file system: the entry cannot be written, the run renders from memory."""
    disk = tmp_path / "full"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        clip = tmp_path / "clip.mkv"
        write_clip(clip, flicker_clip(n=8)[1], fps=24.0, bit_depth=16, codec="ffv1")
        code = main(["run", str(clip), "-o", str(tmp_path / "out.mkv"), "--analysis-size", "64",
                     "--cache-dir", str(disk)])
        warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert code == 0
        assert any("cannot write the analysis cache" in m and "No space left" in m for m in warned), warned
        assert len(_frames(tmp_path / "out.mkv")) == 8
        assert not [p for p in disk.iterdir()]  # no partial entry, no lock file
    finally:
        subprocess.run(["umount", str(disk)], check=False)
