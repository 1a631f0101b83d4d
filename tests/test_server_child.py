"""The model server in a child process of the plugin (DEFLICKER_SERVER, issue 15 point 5), driven by
the C++ test host (tests/host/ofxhost) through the real bundle: Contents/<arch>/deflicker_server
running deflicker.server.child.

* child mode renders the same bytes as the embedded server;
* a server killed mid-render fails that render with a message on the node and a clean host exit,
  and the next render starts a new server; a server that cannot start is tried a bounded number
  of times;
* auto mode picks the child when the host process already has a torch (libc10) or another Python
  loaded (empty stand-ins built under build/tests/host/fake_libs, preloaded) or ships a torch beside
  its executable, embedded otherwise.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from test_ofx_host import BUILD, BUNDLE, FAKE, HOST, OFX_OK, HostRun, assert_same, built, clip, reference, run_host, still  # noqa: F401

FAKE_LIBS = BUILD / "tests" / "host" / "fake_libs"
STOPPED = "Deflicker: the analysis server stopped (signal 9: Killed) during "


def server_env(tmp_path: Path, mode: str, **extra: str) -> dict[str, str]:
    """Environment of one host run: the server mode, its own cache and log."""
    return {"DEFLICKER_SERVER": mode, "DEFLICKER_CACHE_DIR": str(tmp_path / f"cache-{mode}"),
            "DEFLICKER_OFX_LOG": str(tmp_path / f"{mode}.log"), **extra}


def log_lines(tmp_path: Path, mode: str, text: str) -> list[str]:
    return [line for line in (tmp_path / f"{mode}.log").read_text().splitlines() if text in line]


def messages(run: HostRun) -> list[str]:
    return [e["text"] for e in run.events if e["event"] in ("persistent-message", "message")]


def test_child_server_renders_the_same_pixels_as_the_embedded_one(clip, reference, tmp_path):
    raws = {}
    for mode in ("embedded", "child"):
        run = run_host("render", built(BUNDLE), clip, "-o", tmp_path / f"{mode}.mkv", "--raw-out", tmp_path / f"{mode}.raw",
                       "--threads", "2", "--order", "shuffle", "--press", "reanalyze", "--instances", "2",
                       env=server_env(tmp_path, mode))
        assert all(s == OFX_OK for _, s in run.statuses()), run.explain()
        assert log_lines(tmp_path, mode, f"server mode: {mode} (DEFLICKER_SERVER={mode})"), run.explain()
        assert_same(tmp_path / f"{mode}.mkv", reference, run)
        raws[mode] = (tmp_path / f"{mode}.raw").read_bytes()
    assert raws["child"] == raws["embedded"]  # float32 output, byte for byte
    started = log_lines(tmp_path, "child", "started the analysis server, pid ")
    assert len(started) == 1 and "server deflicker.server.model_server" in started[0], started
    assert not log_lines(tmp_path, "embedded", "started the analysis server")


def test_a_killed_server_fails_the_render_not_the_host(clip, reference, tmp_path):
    # The first server kills itself (SIGKILL) on its 30th message: in the middle of the first
    # render's analysis, while the plugin serves its frame fetches.
    env = server_env(tmp_path, "child", DEFLICKER_SERVER_CHILD_TEST_DIE_AFTER="30")
    run = run_host("render", built(BUNDLE), clip, "-o", tmp_path / "out.mkv", "--frames", "0-3", env=env, ok=False)
    assert run.returncode == 1 and not run.of("violation"), run.explain()  # the plugin failed; the host did not crash
    assert run.statuses()[0] == (0, 1) and all(s == OFX_OK for _, s in run.statuses()[1:]), run.explain()
    assert [m for m in messages(run) if m.startswith(STOPPED + "render; the next render starts it again")], run.explain()
    assert run.of("action", name="OfxActionUnload", status=OFX_OK), run.explain()
    assert run.stderr == "ofxhost: error: 1 of 4 frames failed to render; nothing written\n", run.explain()
    assert not (tmp_path / "out.mkv").exists()
    assert len(log_lines(tmp_path, "child", "started the analysis server, pid ")) == 2  # a new one for frame 1
    # Render the failed frame again: the restarted server gives the same pixels as ever.
    again = run_host("render", BUNDLE, clip, "-o", tmp_path / "again.mkv", "--frames", "0-3", "--retry-failed",
                     env=server_env(tmp_path / "again", "child", DEFLICKER_SERVER_CHILD_TEST_DIE_AFTER="30"))
    assert again.statuses()[0] == (0, 1) and again.statuses()[-1] == (0, OFX_OK), again.explain()
    assert_same(tmp_path / "again.mkv", reference[:4], again)


def test_a_hung_server_is_killed_when_the_host_asks_to_stop(still, tmp_path):
    # The first server stops (SIGSTOP) on its first request; the host's abort() says "stop" from
    # then on: 10 s later the plugin kills it and the render fails; the next frame gets a new server.
    path, pixels = still
    env = {**FAKE, **server_env(tmp_path, "child", DEFLICKER_SERVER_CHILD_TEST_DIE_AFTER="1",
                                DEFLICKER_SERVER_CHILD_TEST_SIGNAL="STOP")}
    run = run_host("render", built(BUNDLE), path, "-o", tmp_path / "out.mkv", "--frames", "0-1", "--abort-after", "0",
                   "--retry-failed", env=env)
    assert run.statuses() == [(0, 1), (1, OFX_OK), (0, OFX_OK)], run.explain()
    assert messages(run)[0] == (STOPPED + "open_clip (it did not answer within 10 s of the host's request to stop); "
                                "the next render starts it again (details in deflicker-ofx.log)"), run.explain()
    assert_same(tmp_path / "out.mkv", pixels[:2], run)


def test_a_server_that_cannot_start_is_tried_four_times(still, tmp_path):
    path, _ = still
    env = server_env(tmp_path, "child", DEFLICKER_OFX_SERVER="no_such_server_module")
    run = run_host("render", built(BUNDLE), path, "--discard", "--frames", "0-5", env=env, ok=False)
    assert run.returncode == 1 and not run.of("violation"), run.explain()
    assert [s for _, s in run.statuses()] == [1] * 6, run.explain()
    texts = messages(run)
    assert all("cannot load the deflicker server" in t and "no_such_server_module" in t for t in texts[:4]), texts
    assert texts[4:] and all(t.startswith("Deflicker: RuntimeError: the analysis server failed 4 times (last: ")
                             and t.endswith("save your work and restart the host") for t in texts[4:]), texts
    assert len(log_lines(tmp_path, "child", "deflicker_server: cannot load the deflicker server")) == 4


def test_a_bundle_without_its_server_says_to_reinstall(still, tmp_path):
    path, _ = still
    binaries = tmp_path / "Deflicker.ofx.bundle" / "Contents" / "Linux-x86-64"  # the loader and the core only
    binaries.mkdir(parents=True)
    for name in ("Deflicker.ofx", "deflicker_core.so"):
        shutil.copy2(built(BUNDLE) / "Contents" / "Linux-x86-64" / name, binaries / name)
    run = run_host("render", binaries.parents[1], path, "--discard", "--frames", "0-0", "--plugin-file-path", BUNDLE,
                   env={**FAKE, **server_env(tmp_path, "child")}, ok=False)
    assert run.returncode == 1 and run.statuses() == [(0, 1)], run.explain()
    assert messages(run) == [f"Deflicker: OSError: cannot start {binaries}/deflicker_server: No such file or directory "
                             "(the plugin bundle is incomplete: reinstall it)"], run.explain()


@pytest.mark.parametrize("preload,mode,why", [
    (None, "embedded", "auto: no other torch or Python in the host process"),
    ("libc10.so", "child", "auto: the host process has libc10.so loaded ("),
    ("libpython3.1.so", "child", "auto: the host process has Python 3.1 loaded ("),
], ids=["nothing-loaded", "host-torch", "host-python-3.1"])
def test_auto_mode_picks_the_child_when_the_host_has_its_own_torch_or_python(still, tmp_path, preload, mode, why):
    path, pixels = still
    env = {**FAKE, **server_env(tmp_path, "auto")}
    if preload:
        env["LD_PRELOAD"] = str(built(FAKE_LIBS / preload))
    run = run_host("render", built(BUNDLE), path, "-o", tmp_path / "out.mkv", "--param", "strength=0.5", env=env)
    assert log_lines(tmp_path, "auto", f"server mode: {mode} ({why}"), (tmp_path / "auto.log").read_text()
    assert bool(log_lines(tmp_path, "auto", "started the analysis server")) == (mode == "child")
    expected = np.rint(np.clip(pixels / np.float32(65535) * np.float32(0.5), 0, 1) * 65535).astype(np.uint16)
    assert_same(tmp_path / "out.mkv", expected, run)


def test_auto_mode_picks_the_child_when_the_host_ships_a_torch_it_may_load_later(still, tmp_path):
    path, _ = still
    host = tmp_path / "Nuke" / "ofxhost"  # a host install with libtorch in its lib/ (loaded by its own ML nodes)
    (host.parent / "lib").mkdir(parents=True)
    shutil.copy2(built(HOST), host)
    (host.parent / "lib" / "libtorch_cpu.so").write_bytes(b"")
    run_host("render", built(BUNDLE), path, "--discard", "--frames", "0-0", host=host, env={**FAKE, **server_env(tmp_path, "auto")})
    assert log_lines(tmp_path, "auto", f"server mode: child (auto: the host ships its own torch ({host.parent}/lib/libtorch_cpu.so)")
    assert log_lines(tmp_path, "auto", "started the analysis server")


def test_the_switch_overrides_auto(still, tmp_path):
    path, _ = still
    env = {**FAKE, **server_env(tmp_path, "embedded"), "LD_PRELOAD": str(built(FAKE_LIBS / "libc10.so"))}
    run_host("render", built(BUNDLE), path, "--discard", "--frames", "0-0", env=env)
    assert log_lines(tmp_path, "embedded", "server mode: embedded (DEFLICKER_SERVER=embedded)")
    assert not log_lines(tmp_path, "embedded", "started the analysis server")


def test_copy_then_delete_in_child_mode(clip, reference, tmp_path):
    # Deleting the original sends close_instance (queued while a call runs); the copy keeps its clip.
    run = run_host("render", built(BUNDLE), clip, "-o", tmp_path / "out.mkv", "--copy", "--threads", "2",
                   env=server_env(tmp_path, "child"))
    assert run.of("copied") and run.of("deleted"), run.explain()
    assert all(s == OFX_OK for _, s in run.statuses()), run.explain()
    assert_same(tmp_path / "out.mkv", reference, run)
    assert len(log_lines(tmp_path, "child", "started the analysis server, pid ")) == 1


def test_child_server_carries_every_setting_and_clip_fact(tmp_path):
    # Keep slow changes (a setting) and a premultiplied RGBA source (a clip fact) reach the child
    # as they reach the embedded server: the same pixels, and not those of the defaults.
    from test_ofx_host import alpha_clip

    source = alpha_clip(tmp_path / "alpha.mkv", soft=False)
    raws = {}
    for mode in ("embedded", "child"):
        for args in ((), ("--param", "keep_slow=4", "--premult")):
            out = tmp_path / f"{mode}{len(args)}.raw"
            run = run_host("render", built(BUNDLE), source, "--raw-out", out, *args,
                           env=server_env(tmp_path, mode, DEFLICKER_CACHE_DIR=str(tmp_path / f"cache-{mode}{len(args)}")))
            assert all(s == OFX_OK for _, s in run.statuses()), run.explain()
            raws[mode, len(args)] = out.read_bytes()
    assert raws["child", 3] == raws["embedded", 3] and raws["child", 0] == raws["embedded", 0]
    assert raws["embedded", 3] != raws["embedded", 0]
