"""The plugin's log (deflicker-ofx.log) never writes through a link planted in a shared temp folder.

Another user of the machine can put a symbolic link (or a hard link, or a file of their own) at the
log's name in /tmp before the plugin runs; appending to it would damage the file it names. The real
bundle's loader and core, loaded by the test host (tests/host/ofxhost) with TMPDIR pointing at a
sticky world-writable folder, and the engine's own handler (deflicker/server/plugin_log.py) must leave
every planted target untouched and log to a private per-user file instead, saying why first.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import pytest

from _clips import flicker_clip
from deflicker.server.plugin_log import PluginLogHandler, log_to_plugin_log, open_plugin_log
from test_ofx_host import BUNDLE, H, W, built, run_host, write_clip

ARCH = "Linux-x86-64"
PRECIOUS = "precious: must stay as it is\n"


def shared_tmp(tmp_path: Path) -> Path:
    """A temp folder like /tmp: sticky and writable by everyone."""
    folder = tmp_path / "shared-tmp"
    folder.mkdir()
    folder.chmod(0o1777)
    return folder


def plant_link(at: Path, tmp_path: Path) -> Path:
    """A symbolic link at ``at`` to a new file holding PRECIOUS; returns that file."""
    victim = tmp_path / f"victim-{len(list(tmp_path.glob('victim-*')))}.txt"
    victim.write_text(PRECIOUS)
    at.symlink_to(victim)
    return victim


def binaries(tmp_path: Path, core: bool) -> Path:
    """The built bundle's loader (and, with ``core``, its core) in a bundle of this test's; its Contents/ARCH."""
    folder = tmp_path / "Deflicker.ofx.bundle" / "Contents" / ARCH
    folder.mkdir(parents=True)
    for name in ["Deflicker.ofx"] + ["deflicker_core.so"] * core:
        shutil.copy2(built(BUNDLE) / "Contents" / ARCH / name, folder / name)
    return folder


def per_user_log(shared: Path) -> Path:
    return shared / f"deflicker-ofx-{os.geteuid()}.log"


def test_core_and_engine_log_past_planted_links_into_a_private_file(tmp_path):
    _, frames = flicker_clip(3, H, W, seed=3)
    clip = write_clip(tmp_path / "clip.mkv", frames)
    folder = binaries(tmp_path, core=True)
    shared = shared_tmp(tmp_path)
    chosen, beside, common = shared / "chosen.log", folder / "deflicker-ofx.log", shared / "deflicker-ofx.log"
    victims = [plant_link(path, tmp_path) for path in (chosen, beside, common)]
    env = {"TMPDIR": str(shared), "DEFLICKER_OFX_LOG": str(chosen), "DEFLICKER_CACHE_DIR": str(tmp_path / "cache")}
    run_host("render", folder.parents[1], clip, "--discard", "--frames", "0-0", "--plugin-file-path", BUNDLE, env=env)
    assert all(v.read_text() == PRECIOUS for v in victims)
    assert all(p.is_symlink() for p in (chosen, beside, common))
    log = per_user_log(shared)
    assert log.stat().st_mode & 0o777 == 0o600
    lines = log.read_text().splitlines()
    assert " [WARNING] " in lines[0] and lines[0].endswith(
        f"ofx: not logging to {chosen} is a symbolic link: not followed; {beside} is a symbolic link: not followed; "
        f"{common} is a symbolic link: not followed"), lines[0]
    assert any("started embedded Python" in line for line in lines), lines  # the core
    assert any(re.search(r" deflicker\.[\w.]+ INFO: ", line) for line in lines), lines  # the engine's own records


@pytest.mark.parametrize("planted", ["link", "hard-link", "fifo", "other-user"])
def test_loader_logs_past_what_another_user_planted(tmp_path, planted):
    folder = binaries(tmp_path, core=False)  # no core: the loader logs why, with no Python at all
    shared = shared_tmp(tmp_path)
    common = shared / "deflicker-ofx.log"
    victim = tmp_path / "victim.txt"
    victim.write_text(PRECIOUS)
    why = {"link": "a symbolic link: not followed", "hard-link": "a file with a second name (a hard link)",
           "fifo": "not a regular file", "other-user": "uid 1000's file, not ours"}[planted]
    if planted == "link":
        common.symlink_to(victim)
    elif planted == "hard-link":
        os.link(victim, common)
    elif planted == "fifo":  # would block a plain open for writing forever
        os.mkfifo(common)
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to plant another user's file")
        common.write_text(PRECIOUS)
        common.chmod(0o666)
        os.chown(common, 1000, 1000)
    beside = plant_link(folder / "deflicker-ofx.log", tmp_path)  # so the loader turns to the temp folder
    run = run_host("describe", folder.parents[1], env={"TMPDIR": str(shared), "DEFLICKER_OFX_LOG": ""}, ok=False)
    assert run.returncode == 3, run.explain()
    assert victim.read_text() == PRECIOUS and beside.read_text() == PRECIOUS
    if planted != "fifo":
        assert common.read_text() == PRECIOUS
    lines = per_user_log(shared).read_text().splitlines()
    assert len(lines) == 2 and f"{common} is {why}" in lines[0] and " [ERROR] " in lines[1], lines
    assert "deflicker_core.so: cannot open shared object file" in lines[1], lines


def test_engine_handler_opens_only_a_file_of_its_own(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text(PRECIOUS)
    link, hard, fifo = tmp_path / "link.log", tmp_path / "hard.log", tmp_path / "fifo.log"
    link.symlink_to(victim)
    os.link(victim, hard)
    os.mkfifo(fifo)
    assert open_plugin_log(str(link)) is None and open_plugin_log(str(hard)) is None and open_plugin_log(str(fifo)) is None
    assert open_plugin_log(str(tmp_path / "no-folder" / "x.log")) is None
    logger = logging.getLogger("test-plugin-log")
    try:
        log_to_plugin_log(logger, str(link))
        assert not logger.handlers and victim.read_text() == PRECIOUS
        good = tmp_path / "good.log"
        log_to_plugin_log(logger, str(good))
        log_to_plugin_log(logger, str(good))  # once
        logger.warning("hello")
        assert [type(h) for h in logger.handlers] == [PluginLogHandler]
        assert good.read_text().endswith("test-plugin-log WARNING: hello\n") and good.stat().st_mode & 0o777 == 0o600
    finally:
        for handler in logger.handlers[:]:
            logger.removeHandler(handler)
            handler.close()
