"""The OFX plugin driven by the C++ test host (tests/host/ofxhost), like Resolve or Nuke would drive it.

Three groups of scenarios, each on a tiny real clip (64x48, 12 frames, 16- or 8-bit FFV1) made in tmp_path:

* the host itself, against tests/host/selftest_plugin.cpp (no Python): variadic params, button
  presses, bottom-up and top-down rows, depths, scripted abort/cancel, injected bad frames;
* the Deflicker bundle: describe, out-of-order and threaded renders byte-identical to
  ``deflicker run``, Reanalyze while another instance renders, two processes sharing one cache,
  abort and cancel during analysis, a host that started Python first, bad input frames, depths and
  RGB, each byte-identical to ``deflicker run``; a premultiplied RGBA source (``--premult``) against
  the same picture handed over straight;
* the Deflicker bundle over tests/_plugin_fake_server.py (frame * strength): the C++ side alone.

The build directory is $DEFLICKER_BUILD_DIR or build/ (``make test`` builds it first). Without
a build the scenarios skip, except under CI, where a missing build is a failure.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from _clips import flicker_clip

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("DEFLICKER_BUILD_DIR", ROOT / "build"))
HOST = BUILD / "tests" / "host" / "ofxhost"
HOST_PY = BUILD / "tests" / "host" / "ofxhost-py"
SELFTEST = BUILD / "tests" / "host" / "HostSelfTest.ofx.bundle"
BUNDLE = BUILD / "Deflicker.ofx.bundle"
W, H, N = 64, 48, 12
OFX_OK = 0


def built(path: Path) -> Path:
    """``path`` if it was built; otherwise skip (a failure under CI)."""
    if path.exists():
        return path
    message = f"{path} is not built (run 'make bundle')"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# ------------------------------------------------------------------ running the host


@dataclass
class HostRun:
    """One ofxhost process: its exit code, its JSON events and its stderr."""

    command: list[str]
    returncode: int
    events: list[dict]
    stderr: str

    def of(self, kind: str, **match) -> list[dict]:
        """Events of one kind whose fields equal ``match``."""
        return [e for e in self.events if e["event"] == kind and all(e.get(k) == v for k, v in match.items())]

    def statuses(self) -> list[tuple[int, int]]:
        """(frame, OFX status) of every Render call, in call order."""
        return [(e["frame"], e["status"]) for e in self.of("render")]

    def final_params(self, instance: int) -> dict:
        """Parameter values of an instance at the end of the run."""
        return self.of("param-values", instance=instance)[-1]["values"]

    def explain(self) -> str:
        """What to print when a scenario fails: the command, stderr and the last events."""
        tail = "\n".join(json.dumps(e)[:300] for e in self.events[-25:])
        return f"$ {' '.join(self.command)}\nexit {self.returncode}\n--- stderr ---\n{self.stderr[-4000:]}\n--- last events ---\n{tail}"


def run_hosts(*arg_lists: list, host: Path = HOST, env: Optional[dict] = None, ok: bool = True) -> list[HostRun]:
    """Run one ofxhost per argument list, all at once; with ``ok`` each must succeed and break no OFX rule."""
    commands = [[str(built(host))] + [str(a) for a in args] for args in arg_lists]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **(env or {})}) for c in commands]
    runs = []
    for command, proc in zip(commands, procs):
        stdout, stderr = proc.communicate(timeout=300)
        events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        runs.append(HostRun(command, proc.returncode, events, stderr))
    for run in runs if ok else []:
        assert run.returncode == 0, run.explain()
        assert not run.of("violation"), run.explain()
    return runs


def run_host(*args: object, host: Path = HOST, env: Optional[dict] = None, ok: bool = True) -> HostRun:
    """Run ofxhost with ``args``; with ``ok`` the run must succeed and break no OFX rule."""
    return run_hosts(list(args), host=host, env=env, ok=ok)[0]


# ------------------------------------------------------------------ clips


def write_clip(path: Path, frames: np.ndarray, bits: int = 16) -> Path:
    """Float frames (N, H, W, 3) in [0, 1] -> a 16-bit (or 8-bit) RGB FFV1 file."""
    pixels = np.rint(np.clip(frames, 0, 1) * (2 ** bits - 1)).astype("<u2" if bits == 16 else "u1")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb48le" if bits == 16 else "rgb24",
                    "-s", f"{W}x{H}", "-r", "24", "-i", "-", "-c:v", "ffv1", str(path)], input=pixels.tobytes(), check=True)
    return path


def decode(path: Path, bits: int = 16) -> np.ndarray:
    """A clip's frames as uint16 (or uint8) RGBA (N, H, W, 4); 8-bit files are read at 8 bits (exactly)."""
    fmt, dtype = ("rgba64le", "<u2") if bits == 16 else ("rgba", "u1")
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", fmt, "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype).reshape(-1, H, W, 4)


def assert_same(path: Path, expected: np.ndarray, run: Optional[HostRun] = None) -> None:
    """Decoded RGB of ``path`` equals ``expected`` (uint16, or uint8 for an 8-bit file, RGB) exactly."""
    got = decode(path, 8 if expected.dtype == np.uint8 else 16)[..., :3]
    assert got.shape == expected.shape, run.explain() if run else got.shape
    diff = np.abs(got.astype(np.int64) - expected.astype(np.int64))
    assert diff.max() == 0, (f"{int((diff > 0).sum())} values differ, max {int(diff.max())} of 65535\n"
                             + (run.explain() if run else ""))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flickering 64x48, 12-frame, 16-bit FFV1 clip."""
    _, flickering = flicker_clip(N, H, W, seed=5)
    return write_clip(tmp_path_factory.mktemp("clip") / "flicker.mkv", flickering)


def cli_reference(clip: Path, tmp_path_factory: pytest.TempPathFactory, bits: int = 16,
                  extra: tuple[str, ...] = ()) -> np.ndarray:
    """``deflicker run`` on a clip (its own cache dir), with ``extra`` options: uint16 (or uint8)
    RGB (N, H, W, 3)."""
    built(BUNDLE)
    out = tmp_path_factory.mktemp("cli") / "reference.mkv"
    env = {**os.environ, "DEFLICKER_CACHE_DIR": str(tmp_path_factory.mktemp("cli-cache"))}
    proc = subprocess.run([sys.executable, "-m", "deflicker", "run", str(clip), "-o", str(out), *extra], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return decode(out, bits)[..., :3]


@pytest.fixture(scope="module")
def reference(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """``deflicker run`` on the 16-bit clip."""
    return cli_reference(clip, tmp_path_factory)


def cache_files(cache: Path) -> dict[str, tuple[int, int]]:
    """Every file under a cache dir (lock files aside): relative path -> (size, mtime_ns)."""
    return {str(p.relative_to(cache)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(cache.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


# ------------------------------------------------------------------ the host itself (self-test plugin)


@pytest.fixture(scope="module")
def still(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 6-frame clip and its uint16 RGB pixels."""
    _, frames = flicker_clip(6, H, W, seed=1)
    path = write_clip(tmp_path_factory.mktemp("still") / "still.mkv", frames)
    return path, decode(path)[..., :3]


def test_host_answers_unknown_properties_and_bad_indices():
    run = run_host("describe", built(SELFTEST))  # Describe/DescribeInContext fail unless the host refuses both
    assert run.of("unknown-prop", name="OfxHostSelfTestNoSuchProp"), run.explain()
    assert run.of("plugin")[0]["id"] == "org.deflicker.hosttest.Gain"
    assert {e["context"] for e in run.of("context")} == {"OfxImageEffectContextFilter", "OfxImageEffectContextGeneral"}
    options = run.of("param", name="mode")[0]["props"]["OfxParamPropChoiceOption"]
    assert options == ["first", "second"]


def test_host_params_press_threads_and_negative_rowbytes(still, tmp_path):
    path, pixels = still
    run = run_host("render", built(SELFTEST), path, "-o", tmp_path / "out.mkv", "--raw-out", tmp_path / "out.raw",
                   "--param", "gain=0.5", "--param", "mode=second", "--param", "flag=false", "--param", "count=7",
                   "--param", "status=hello", "--instances", "2", "--press", "press", "--threads", "3",
                   "--order", "shuffle", "--rowbytes", "negative")
    expected = np.rint(np.clip(pixels / np.float32(65535) * np.float32(0.5), 0, 1) * 65535).astype(np.uint16)
    assert_same(tmp_path / "out.mkv", expected, run)
    raw = np.fromfile(tmp_path / "out.raw", "<f4").reshape(-1, H, W, 4)
    np.testing.assert_allclose(raw[..., :3], pixels / 65535.0 * 0.5, atol=1e-6)
    assert sorted(f for f, _ in run.statuses()) == list(range(6))
    assert [f for f, _ in run.statuses()] != list(range(6)), "--order shuffle rendered in order"
    assert run.of("press", instance=0, status=OFX_OK), run.explain()
    assert run.final_params(0) == {"gain": 0.5, "count": 7, "flag": 0, "mode": 1, "status": "pressed 1"}
    assert run.final_params(1)["status"] == "hello"


@pytest.mark.parametrize("depth", ["short", "byte"])
def test_host_depths(still, tmp_path, depth):
    path, pixels = still
    run_host("render", built(SELFTEST), path, "-o", tmp_path / "out.mkv", "--depth", depth)
    expected = pixels if depth == "short" else (np.rint(pixels / 257.0) * 257).astype(np.uint16)
    assert_same(tmp_path / "out.mkv", expected)


def test_host_half_float_hands_half_precision_values(still, tmp_path):
    path, pixels = still
    run_host("render", built(SELFTEST), path, "--raw-out", tmp_path / "out.raw", "--half-float")
    raw = np.fromfile(tmp_path / "out.raw", "<f4").reshape(-1, H, W, 4)
    exact = pixels.astype(np.float32) / np.float32(65535)
    assert np.array_equal(raw[..., :3], exact.astype(np.float16).astype(np.float32))
    assert not np.array_equal(raw[..., :3], exact)


@pytest.mark.parametrize("args,failures", [
    (["--inject", "missing-frame:1", "--inject", "wrong-size:2", "--inject", "nan:3"], 3),
    (["--abort-after", "1", "--cancel-after", "2"], 2),
], ids=["injected-frames", "abort-and-cancel"])
def test_host_faults_fire_once_then_frames_render(still, tmp_path, args, failures):
    path, pixels = still
    run = run_host("render", built(SELFTEST), path, "-o", tmp_path / "out.mkv", "--frames", "0-3", "--retry-failed", *args)
    failed = [f for f, s in run.statuses() if s != OFX_OK]
    assert len(failed) == failures and run.statuses()[-failures:] == [(f, OFX_OK) for f in failed], run.explain()
    assert len(run.of("persistent-message")) == failures, run.explain()
    assert_same(tmp_path / "out.mkv", pixels[:4], run)


def test_host_reports_bad_usage_in_one_line(still, tmp_path):
    for args, code in [(["render", tmp_path / "missing.ofx.bundle", still[0], "-o", tmp_path / "y.mkv"], 3),
                       (["render", SELFTEST, tmp_path / "missing.mkv", "-o", tmp_path / "y.mkv"], 3),
                       (["render", SELFTEST, still[0], "-o", tmp_path / "y.mkv", "--press", "nothing"], 2),
                       (["render", "--bogus"], 2), (["explode", "x"], 2)]:
        run = run_host(*args, ok=False)
        assert run.returncode == code, run.explain()
        assert run.stderr.startswith("ofxhost: error: ") and run.stderr.count("\n") == 1, run.stderr


# ------------------------------------------------------------------ the Deflicker plugin over the fake server
# tests/_plugin_fake_server.py renders frame * strength, so the C++ side is checked exactly and fast.

FAKE = {"DEFLICKER_OFX_SERVER": "_plugin_fake_server", "DEFLICKER_OFX_EXTRA_PATH": str(ROOT / "tests")}


def test_plugin_rgb_threads_two_instances_over_fake_server(still, tmp_path):
    path, pixels = still
    run = run_host("render", built(BUNDLE), path, "-o", tmp_path / "out.mkv", "--components", "rgb", "--threads", "3",
                   "--order", "shuffle", "--param", "strength=0.5", "--instances", "2", "--press", "reanalyze", env=FAKE)
    expected = np.rint(np.clip(pixels / np.float32(65535) * np.float32(0.5), 0, 1) * 65535).astype(np.uint16)
    assert_same(tmp_path / "out.mkv", expected, run)
    prefs = run.of("clip-preferences")[-1]["prefs"]
    assert prefs["OfxImageEffectFrameVarying"] == [1] and prefs["OfxImageClipPropComponents_Output"] == ["OfxImageComponentRGB"]
    opened = [e for e in run.of("frames-needed") if e["status"] == OFX_OK]
    assert opened and all(e["ranges"] == [max(0, int(e["time"]) - 1), min(5, int(e["time"]) + 1)]
                          for e in opened), run.explain()
    ui, renderer = run.final_params(0), run.final_params(1)
    assert ui["clip_key"] == renderer["clip_key"] != "", (ui, renderer)  # both instances name one analysis
    facts = json.loads(renderer["status"])  # the fake's status line: what it saw, as JSON
    assert re.fullmatch("[0-9a-f]{16}", facts["instance_id"]), facts  # a live id, not a persisted param
    # the press analyses again unless it came first; one analysis at a time, each with the host's progress bar
    assert facts["analysed"] and facts["analyses"] in (1, 2), facts
    assert len(run.of("progress", what="start")) == len(run.of("progress", what="end")) == facts["analyses"]
    assert run.of("press", instance=0, status=OFX_OK), run.explain()
    # a zero-copy view of the host's bottom-up buffer: top-down, negative row stride, read-only
    assert facts["shape"] == [H, W, 3] and facts["strides"] == [-W * 3 * 4, 12, 4] and not facts["writeable"]


def test_python_is_found_through_the_hosts_plugin_file_path(still, tmp_path):
    path, pixels = still
    # The binary alone, in a bundle without Resources: its own path leads to no python.cfg.
    moved = tmp_path / "Deflicker.ofx.bundle" / "Contents" / "Linux-x86-64" / "Deflicker.ofx"
    moved.parent.mkdir(parents=True)
    for name in ("Deflicker.ofx", "deflicker_core.so"):  # the loader and its core
        shutil.copy2(built(BUNDLE) / "Contents" / "Linux-x86-64" / name, moved.parent / name)
    log = tmp_path / "moved.log"
    args = ("render", moved.parents[2], path, "--discard", "--frames", "0-1")
    run = run_host(*args, "--plugin-file-path", BUNDLE, env={**FAKE, "DEFLICKER_OFX_LOG": str(log)})
    assert run.of("file-path")[0]["OfxPluginPropFilePath"] == str(BUNDLE)
    assert f"python.cfg from the host's OfxPluginPropFilePath: {BUNDLE}/Contents/Resources/python.cfg" in log.read_text()
    failed = run_host(*args, env={**FAKE, "DEFLICKER_OFX_LOG": str(tmp_path / "own.log")}, ok=False)
    assert failed.returncode == 1 and f"no {moved.parents[1]}/Resources/python.cfg" in (tmp_path / "own.log").read_text()
    # A host that sets no OfxPluginPropFilePath: the binary's own bundle, with a warning.
    log = tmp_path / "fallback.log"
    run_host("render", BUNDLE, path, "--discard", "--frames", "0-0", "--plugin-file-path", "",
             env={**FAKE, "DEFLICKER_OFX_LOG": str(log)})
    assert "[WARNING]" in next(line for line in log.read_text().splitlines()
                               if "the host gave no OfxPluginPropFilePath: python.cfg from the plugin binary's own path: "
                               f"{BUNDLE}/Contents/Resources/python.cfg" in line)


@pytest.mark.parametrize("core", ["missing", "garbage", "truncated", "foreign"])
def test_a_bundle_without_a_working_core_loads_as_no_plugins(tmp_path, core):
    # The loader (Deflicker.ofx, no Python) alone, or beside a damaged core or one that is no Deflicker core.
    binary = tmp_path / "Deflicker.ofx.bundle" / "Contents" / "Linux-x86-64" / "Deflicker.ofx"
    binary.parent.mkdir(parents=True)
    shutil.copy2(built(BUNDLE) / "Contents" / "Linux-x86-64" / "Deflicker.ofx", binary)
    target = binary.parent / "deflicker_core.so"
    if core == "garbage":
        target.write_bytes(b"not a library\n")
    elif core == "truncated":  # a half-copied core: glibc's dlopen alone would die of SIGBUS on it
        target.write_bytes((BUNDLE / "Contents" / "Linux-x86-64" / "deflicker_core.so").read_bytes()[:4096])
    elif core == "foreign":
        shutil.copy2(built(SELFTEST) / "Contents" / "Linux-x86-64" / "HostSelfTest.ofx", target)
    run = run_host("describe", binary.parents[2], env={"DEFLICKER_OFX_LOG": ""}, ok=False)  # "": unset
    assert run.returncode == 3 and run.stderr == f"ofxhost: error: {binary} reports no plugins (OfxGetNumberOfPlugins() == 0)\n", \
        run.explain()
    lines = (binary.parent / "deflicker-ofx.log").read_text().splitlines()  # beside the binary: no $DEFLICKER_OFX_LOG
    why = {"missing": ": cannot open shared object file", "garbage": ": file too short", "truncated": ": truncated (4096 bytes",
           "foreign": " lacks the dfk_core_* entry points"}[core]
    assert len(lines) == 1 and " [ERROR] pid " in lines[0] and f"{target}{why}" in lines[0], lines
    assert lines[0].endswith("(0 plugins: the bundle is incomplete or damaged, reinstall it)"), lines
    log = tmp_path / "chosen.log"  # $DEFLICKER_OFX_LOG wins, as in the core
    assert run_host("describe", binary.parents[2], env={"DEFLICKER_OFX_LOG": str(log)}, ok=False).returncode == 3
    assert log.read_text().split(" ofx: ")[1] == lines[0].split(" ofx: ")[1] + "\n"


def test_reopened_project_keeps_its_hidden_params(still, tmp_path):
    path, _ = still
    run = run_host("render", built(BUNDLE), path, "-o", tmp_path / "out.mkv", "--frames", "2-3", "--param",
                   "clip_key=saved-key", "--context", "general", "--rowbytes", "negative", env=FAKE)
    params = run.final_params(0)
    facts = json.loads(params["status"])
    assert facts["persisted_key"] == "saved-key", facts
    assert facts["strides"] == [W * 4 * 4, 16, 4]  # a top-down host buffer (negative rowBytes) stays top-down
    assert params["clip_key"] != "saved-key"  # SyncPrivateData stored the key of the clip as it is now


# ------------------------------------------------------------------ the Deflicker plugin


def resolve_effect_label() -> str:
    """EFFECT_LABEL of the Resolve script (installers/resolve/deflicker_resolve.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("deflicker_resolve", ROOT / "installers" / "resolve" / "deflicker_resolve.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return str(module.EFFECT_LABEL)


def test_describe_and_create_instance(clip, tmp_path):
    from deflicker.server import plugin_spec
    from deflicker.server.model_server import PLUGIN_FIELDS

    run = run_host("describe", built(BUNDLE))
    assert not run.of("unknown-prop") and not run.of("bad-prop-type"), run.explain()
    descriptor = run.of("descriptor")[0]["props"]
    assert descriptor["OfxPropLabel"] == [resolve_effect_label()]  # what the Resolve script looks for
    assert descriptor["OfxImageEffectPropTemporalClipAccess"] == [1]
    assert descriptor["OfxImageEffectPropSupportsTiles"] == [0]
    assert {"OfxImageEffectContextFilter", "OfxImageEffectContextGeneral"} <= set(descriptor["OfxImageEffectPropSupportedContexts"])
    source = run.of("clip", context="OfxImageEffectContextFilter", name="Source")[0]["props"]
    assert source["OfxImageEffectPropTemporalClipAccess"] == [1]
    params = {e["name"]: e for e in run.of("param", context="OfxImageEffectContextFilter")}
    assert set(PLUGIN_FIELDS) <= set(params)
    assert params["reanalyze"]["type"] == "OfxParamTypePushButton"
    for name in ("strength", "analysis_size"):  # Resolve needs both ranges set
        props = params[name]["props"]
        assert all(abs(props[k][0]) < 1e9 for k in ("OfxParamPropMin", "OfxParamPropMax",
                                                       "OfxParamPropDisplayMin", "OfxParamPropDisplayMax")), props
    assert [e["name"] for e in run.of("param", context="OfxImageEffectContextFilter")] == [p.name for p in plugin_spec.PARAMS]
    for p in plugin_spec.PARAMS:  # the built plugin describes the Python definition's params
        props = params[p.name]["props"]
        assert props["OfxPropLabel"] == [p.label] and props["OfxParamPropHint"] == [p.hint], props
        if p.kind in ("Double", "Int"):
            keys = ("OfxParamPropDefault", "OfxParamPropMin", "OfxParamPropMax", "OfxParamPropDisplayMin",
                    "OfxParamPropDisplayMax")
            assert [props[k][0] for k in keys] == pytest.approx([p.default, p.low, p.high, p.low, p.high]), props
        elif p.kind in ("Bool", "Choice"):
            assert props["OfxParamPropDefault"] == [p.default], props
        if p.kind == "Choice":
            assert props["OfxParamPropChoiceOption"] == list(p.options), props
    plugin = run.of("plugin")[0]
    assert (plugin["id"], tuple(plugin["version"])) == (plugin_spec.PLUGIN_IDENTIFIER, plugin_spec.VERSION)

    created = run_host("render", BUNDLE, clip, "-o", tmp_path / "one.mkv", "--frames", "0-0", "--host-name",
                       "uk.co.thefoundry.nuke")
    actions = [e["name"] for e in created.of("action")]
    for action in ("OfxActionLoad", "OfxActionDescribe", "OfxImageEffectActionDescribeInContext", "OfxActionCreateInstance",
                   "OfxImageEffectActionGetClipPreferences", "OfxImageEffectActionBeginSequenceRender",
                   "OfxImageEffectActionEndSequenceRender", "OfxActionPurgeCaches", "OfxActionDestroyInstance",
                   "OfxActionUnload"):
        assert action in actions, created.explain()
    assert created.of("frames-needed"), "GetFramesNeeded was never called"


@pytest.mark.parametrize("args", [
    ["--order", "shuffle", "--threads", "4"],
    ["--order", "reverse", "--rowbytes", "negative", "--first-frame", "86400"],  # a Resolve-like timeline time
], ids=["shuffle-4-threads", "reverse-negative-rowbytes-offset-time"])
def test_render_matches_cli(clip, reference, tmp_path, args):
    run = run_host("render", built(BUNDLE), clip, "-o", tmp_path / "out.mkv", *args)
    assert all(s == OFX_OK for _, s in run.statuses()), run.explain()
    assert_same(tmp_path / "out.mkv", reference, run)
    if "--threads" not in args:  # one thread: the first render analyses, later ones read only their window
        renders = run.of("render")
        assert renders[0]["fetched"] >= N, run.explain()
        needed = {e["time"]: sum(int(b - a) + 1 for a, b in zip(e["ranges"][::2], e["ranges"][1::2]))
                  for e in run.of("frames-needed") if e["status"] == OFX_OK}
        for e in renders[1:]:  # the declared frames (t's refinement window), t once more for the output
            assert 0 < e["fetched"] <= needed[e["time"]] + 1 < N, (e, needed.get(e["time"]))


def test_keep_slow_param_reaches_the_engine(tmp_path, tmp_path_factory):
    """Keep slow changes through the real bundle: a fading clip rendered with keep_slow=4 is
    byte-identical to ``deflicker run --keep-slow 4`` and differs from the default (auto: one
    second, longer than this 12-frame clip, so it flattens)."""
    _, flickering = flicker_clip(N, H, W, seed=5)
    fading = write_clip(tmp_path / "fade.mkv", flickering * np.linspace(1.0, 0.35, N, dtype=np.float32)[:, None, None, None])
    kept = cli_reference(fading, tmp_path_factory, extra=("--keep-slow", "4"))
    flat = cli_reference(fading, tmp_path_factory)
    run = run_host("render", built(BUNDLE), fading, "-o", tmp_path / "out.mkv", "--param", "keep_slow=4")
    assert all(s == OFX_OK for _, s in run.statuses()), run.explain()
    assert_same(tmp_path / "out.mkv", kept, run)
    assert np.abs(kept.astype(np.int64) - flat.astype(np.int64)).max() > 655  # over 1% of full scale


def test_reanalyze_on_ui_instance_while_render_instance_renders(clip, reference, tmp_path):
    run = run_host("render", built(BUNDLE), clip, "-o", tmp_path / "out.mkv", "--instances", "2", "--press", "reanalyze",
                   "--press-instance", "0", "--threads", "2")
    assert run.of("press", instance=0, name="reanalyze", status=OFX_OK), run.explain()
    assert all(s == OFX_OK for _, s in run.statuses()), run.explain()
    assert run.final_params(0)["status"].startswith("analysed"), run.final_params(0)
    assert_same(tmp_path / "out.mkv", reference, run)


def test_two_processes_share_one_analysis(clip, reference, tmp_path):
    cache = tmp_path / "shared-cache"
    env = {"DEFLICKER_CACHE_DIR": str(cache)}
    # Two processes at once (a farm, Nuke's frame server): one analyses, the other waits and reads it.
    first, second = run_hosts(["render", built(BUNDLE), clip, "-o", tmp_path / "a.mkv", "--frames", "0-5"],
                              ["render", BUNDLE, clip, "-o", tmp_path / "b.mkv", "--frames", "6-11", "--order", "reverse"],
                              env=env)
    stored = cache_files(cache)
    assert len(stored) == 1, stored
    # The one that waits for the other's analysis says so at 0% (the cache lock's wait): no progress beyond.
    analysed = [run for run in (first, second) if any(e["value"] > 0 for e in run.of("progress", what="update"))]
    assert len(analysed) == 1, "both processes analysed the clip (or neither showed progress)"
    assert first.final_params(0)["clip_key"] == second.final_params(0)["clip_key"] != ""  # one key everywhere
    assert_same(tmp_path / "a.mkv", reference[:6], first)
    assert_same(tmp_path / "b.mkv", reference[6:], second)
    third = run_host("render", BUNDLE, clip, "-o", tmp_path / "c.mkv", "--frames", "3-4", env=env)
    assert cache_files(cache) == stored and not third.of("progress", what="update"), "a later process recomputed"
    assert third.final_params(0)["status"].startswith("analysed"), third.explain()
    assert_same(tmp_path / "c.mkv", reference[3:5], third)


def test_abort_during_analysis_leaves_no_cache_entry(clip, reference, tmp_path):
    cache = tmp_path / "cache"
    env = {"DEFLICKER_CACHE_DIR": str(cache)}
    aborted = run_host("render", built(BUNDLE), clip, "-o", tmp_path / "x.mkv", "--frames", "0-0", "--abort-after", "2",
                       env=env, ok=False)
    assert aborted.returncode == 1 and aborted.of("scripted"), aborted.explain()
    assert aborted.statuses() == [(0, aborted.statuses()[0][1])] and aborted.statuses()[0][1] != OFX_OK, aborted.explain()
    assert aborted.of("action", name="OfxActionUnload", status=OFX_OK), "the host did not survive the abort"
    assert cache_files(cache) == {}, f"an aborted analysis left files: {cache_files(cache)}"
    again = run_host("render", BUNDLE, clip, "-o", tmp_path / "out.mkv", env=env)
    assert_same(tmp_path / "out.mkv", reference, again)


def test_cancel_from_progress_then_render_again(clip, reference, tmp_path):
    run = run_host("render", built(BUNDLE), clip, "-o", tmp_path / "out.mkv", "--cancel-after", "2", "--retry-failed",
                   "--context", "general")
    assert run.of("progress", what="update", cancel=1), run.explain()
    assert run.statuses()[0][1] != OFX_OK, "the cancelled render reported success"
    assert_same(tmp_path / "out.mkv", reference, run)


def test_host_that_started_python_first(clip, reference, tmp_path):
    run = run_host("render", built(BUNDLE), clip, "-o", tmp_path / "out.mkv", "--host-python", host=HOST_PY)
    assert run.of("host-python", initialized=1), run.explain()
    assert_same(tmp_path / "out.mkv", reference, run)


def test_bad_frames_get_an_error_status_and_message(clip, reference, tmp_path):
    run = run_host("render", built(BUNDLE), clip, "-o", tmp_path / "out.mkv", "--inject", "missing-frame:3",
                   "--inject", "wrong-size:5", "--inject", "nan:7", "--retry-failed")
    assert {e["kind"] for e in run.of("injected")} == {"missing-frame", "wrong-size", "nan"}, run.explain()
    failed = [i for i, e in enumerate(run.events) if e["event"] == "render" and e["status"] != OFX_OK]
    assert failed, "no render failed on a bad frame"
    for i in failed:  # every failed render said why, before returning its status
        assert any(e["event"] in ("persistent-message", "message") for e in run.events[:i]), run.explain()
    assert_same(tmp_path / "out.mkv", reference, run)  # the host is unharmed: every frame renders afterwards


def test_short_depth_matches_cli(clip, reference, tmp_path):
    run = run_host("render", built(BUNDLE), clip, "-o", tmp_path / "out.mkv", "--depth", "short")
    assert_same(tmp_path / "out.mkv", reference, run)


def test_byte_depth_rgb_matches_cli_on_an_8bit_clip(tmp_path, tmp_path_factory):
    _, flickering = flicker_clip(N, H, W, seed=5)
    clip8 = write_clip(tmp_path / "flicker8.mkv", flickering, bits=8)
    reference8 = cli_reference(clip8, tmp_path_factory, bits=8)
    run = run_host("render", BUNDLE, clip8, "-o", tmp_path / "out.mkv", "--depth", "byte", "--components", "rgb",
                   "--threads", "2")
    assert_same(tmp_path / "out.mkv", reference8, run)


@pytest.fixture(scope="module")
def preanalysed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """An 8-bit RGB media file pre-analysed with ``deflicker analyze`` into a cache of its own:
    (the file, the cache, ``deflicker run``'s uint8 RGB output)."""
    _, flickering = flicker_clip(N, H, W, seed=5)
    clip8 = write_clip(tmp_path_factory.mktemp("media") / "media8.mkv", flickering, bits=8)
    cache = tmp_path_factory.mktemp("preanalysis-cache")
    proc = subprocess.run([sys.executable, "-m", "deflicker", "analyze", str(clip8)], capture_output=True, text=True,
                          env={**os.environ, "DEFLICKER_CACHE_DIR": str(cache)}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return clip8, cache, cli_reference(clip8, tmp_path_factory, bits=8)


@pytest.mark.parametrize("args", [
    ["--depth", "float"],
    ["--depth", "float", "--half-float"],
    ["--depth", "short", "--components", "rgb"],
    ["--depth", "short"],
    ["--depth", "byte", "--components", "rgb"],
    ["--depth", "byte"],
], ids=["float-rgba", "half-float-rgba", "16bit-rgb", "16bit-rgba", "8bit-rgb", "8bit-rgba"])
def test_a_preanalysis_of_the_media_file_is_found_by_the_plugin(preanalysed, tmp_path, args):
    """``deflicker analyze`` of an 8-bit RGB file, then the plugin renders that media as a host
    hands it over (float RGBA, a 16-bit float pipeline, 16- or 8-bit RGB or RGBA): it uses the
    stored analysis (the entry's key, no analysis progress, the cache untouched) and renders
    what ``deflicker run`` does (with half-float input: what it renders from an analysis of its own)."""
    clip8, analysed, reference8 = preanalysed
    cache = shutil.copytree(analysed, tmp_path / "cache", copy_function=shutil.copy2)  # each case its own
    stored = cache_files(cache)
    assert len(stored) == 1, stored
    run = run_host("render", built(BUNDLE), clip8, "-o", tmp_path / "out.mkv", *args,
                   env={"DEFLICKER_CACHE_DIR": str(cache)})
    assert f"{run.final_params(0)['clip_key']}.npz" in stored, (run.final_params(0), stored)
    assert not run.of("progress", what="update"), "the plugin analysed the clip again"
    assert cache_files(cache) == stored, "the plugin wrote a cache entry of its own"
    assert run.final_params(0)["status"].startswith("analysed"), run.explain()
    if "--half-float" not in args:
        assert_same(tmp_path / "out.mkv", reference8, run)
    else:  # other input bits (local refinement follows them): the same pixels as an analysis of its own
        own = run_host("render", BUNDLE, clip8, "-o", tmp_path / "own.mkv", *args,
                       env={"DEFLICKER_CACHE_DIR": str(tmp_path / "own-cache")})
        assert own.of("progress", what="update"), "the plugin did not analyse in an empty cache"
        assert_same(tmp_path / "out.mkv", decode(tmp_path / "own.mkv", 8)[..., :3], run)


def test_bench_plugin_smoke(tmp_path):
    from deflicker.bench.plugin import run

    built(BUNDLE)
    figures = run(tmp_path, frames=3, size=(32, 48), rounds=1)
    assert set(figures) >= {"engine_seconds_per_frame", "plugin_seconds_per_frame", "overhead"}
    assert all(np.isfinite(v) for v in figures.values()) and figures["plugin_seconds_per_frame"] > 0
    cpu = figures["plugin_cpu_seconds_per_frame"] / figures["engine_cpu_seconds_per_frame"]
    wall = figures["plugin_seconds_per_frame"] / figures["engine_seconds_per_frame"]
    assert figures["overhead"] == pytest.approx(cpu - 1) and figures["overhead_wall"] == pytest.approx(wall - 1)
    entries = [p for p in (tmp_path / "plugin_bench_cache").iterdir() if p.suffix == ".npz"]
    assert len(entries) == 1, entries  # the plugin found the engine's analysis of the same pixels


def test_demo_renders_through_the_plugin(clip, reference, tmp_path, capsys):
    from deflicker.cli import demo
    built(BUNDLE)
    assert demo.main(["--input", str(clip), "--out", str(tmp_path), "--bundle", str(BUNDLE), "--host", str(HOST)]) == 0
    assert_same(tmp_path / "flicker_deflickered.mkv", reference)
    assert (tmp_path / "flicker_before_after.png").stat().st_size > 10_000
    assert f"deflickered {N} frames through the OFX plugin" in capsys.readouterr().out


def test_committed_sample_is_what_make_sample_writes():
    sys.path.insert(0, str(ROOT / "samples"))
    try:
        import make_sample
    finally:
        sys.path.remove(str(ROOT / "samples"))
    from deflicker.io.files import open_clip

    path = ROOT / "samples" / "flicker_sample.mkv"
    assert path.stat().st_size < 3_000_000
    expected = np.rint(make_sample.add_flicker(make_sample.clean_frames()) * 255) / 255  # 8-bit, as stored
    with open_clip(path) as sample:
        assert (sample.info.width, sample.info.height, sample.info.bit_depth) == (make_sample.WIDTH, make_sample.HEIGHT, 8)
        assert len(sample) == make_sample.FRAMES
        assert all(np.abs(sample[t] - expected[t]).max() < 1e-6 for t in range(len(sample)))


# ------------------------------------------------------------------ premultiplied alpha


def alpha_clip(path: Path, soft: bool) -> Path:
    """The flickering clip with an alpha that varies across the frame and over time, as a 16-bit RGBA
    FFV1 file: a soft ramp (0 at its left edge) or a hard matte of 0/1 blocks; colour 0 where alpha is 0."""
    _, flickering = flicker_clip(N, H, W, seed=5)
    x, y = np.meshgrid(np.linspace(0, 1, W, dtype=np.float32), np.linspace(0, 1, H, dtype=np.float32))
    ramp = x * (0.5 + 0.5 * y) if soft else ((x * 4).astype(int) + (y * 3).astype(int)) % 2 * np.float32(1)
    alpha = np.stack([np.roll(ramp, 2 * t, axis=1) for t in range(N)])[..., None]
    rgba = np.concatenate([flickering * (alpha > 0), alpha], axis=-1)
    pixels = np.rint(np.clip(rgba, 0, 1) * 65535).astype("<u2")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgba64le", "-s", f"{W}x{H}", "-r", "24",
                    "-i", "-", "-c:v", "ffv1", str(path)], input=pixels.tobytes(), check=True)
    return path


@pytest.mark.parametrize("matte", ["soft", "hard"])
def test_premultiplied_source_is_corrected_on_straight_colour(tmp_path, matte):
    # The same picture handed over straight and premultiplied (colour * alpha, float): the correction
    # acts on straight colour, so the premultiplied render is the straight one times alpha.
    path = alpha_clip(tmp_path / f"{matte}.mkv", soft=matte == "soft")
    rgba = decode(path).astype(np.float32) / np.float32(65535)
    caches = [tmp_path / "straight-cache", tmp_path / "premult-cache"] if matte == "soft" else [tmp_path / "cache"] * 2
    straight = run_host("render", built(BUNDLE), path, "--raw-out", tmp_path / "straight.raw",
                        env={"DEFLICKER_CACHE_DIR": str(caches[0])})
    stored = cache_files(caches[1])
    premult = run_host("render", BUNDLE, path, "--raw-out", tmp_path / "premult.raw", "--premult",
                       env={"DEFLICKER_CACHE_DIR": str(caches[1])})
    out_straight, out_premult = (np.fromfile(tmp_path / f"{name}.raw", "<f4").reshape(N, H, W, 4)
                                 for name in ("straight", "premult"))
    alpha = rgba[..., 3:]
    assert np.array_equal(out_straight[..., 3:], alpha) and np.array_equal(out_premult[..., 3:], alpha)
    assert np.abs(out_straight[..., :3] - rgba[..., :3]).max() > 0.05, "nothing was corrected"
    np.testing.assert_allclose(out_premult[..., :3], out_straight[..., :3] * alpha, rtol=0, atol=1 / 65535)
    prefs = premult.of("clip-preferences")[-1]["prefs"]
    assert prefs["OfxImageEffectPropPreMultiplication"] == ["OfxImageAlphaPremultiplied"], premult.explain()
    prefs = straight.of("clip-preferences")[-1]["prefs"]
    assert prefs["OfxImageEffectPropPreMultiplication"] == ["OfxImageAlphaUnPremultiplied"], straight.explain()
    if matte == "hard":  # colour * alpha is exact here: the straight source's analysis is found, not redone
        key = straight.final_params(0)["clip_key"]
        assert premult.final_params(0)["clip_key"] == key + "-premultiplied", premult.final_params(0)
        assert cache_files(caches[1]) == stored and len(stored) == 1, "the premultiplied source analysed again"
        assert not premult.of("progress", what="update"), premult.explain()


# ------------------------------------------------------------------ how real hosts behave


def test_a_copied_node_keeps_rendering_after_the_original_is_deleted(clip, reference, tmp_path):
    # Copy/paste gives the copy the original's persisted params; deleting the original must not
    # take the clip away from the copy (each live instance counts on its own).
    run = run_host("render", built(BUNDLE), clip, "-o", tmp_path / "out.mkv", "--copy")
    assert run.of("copied") and run.of("deleted"), run.explain()
    assert all(s == OFX_OK for _, s in run.statuses()), run.explain()
    assert_same(tmp_path / "out.mkv", reference, run)


def test_a_param_change_clears_the_error_message(clip, tmp_path):
    # A persistent message left standing stops Nuke rendering: any edit clears it (the next render
    # posts it again if the problem remains).
    run = run_host("render", built(BUNDLE), clip, "--discard", "--frames", "0-0", "--inject", "missing-frame:3",
                   "--change", "strength=0.5", ok=False)
    assert run.returncode == 1 and not run.of("violation"), run.explain()
    kinds = [e["event"] for e in run.events if e["event"] in ("persistent-message", "clear-persistent-message", "changed")]
    assert kinds == ["persistent-message", "clear-persistent-message", "changed"], run.explain()


def test_without_persistent_messages_render_threads_open_no_dialog(clip, tmp_path):
    log = tmp_path / "plugin.log"
    run = run_host("render", built(BUNDLE), clip, "--discard", "--frames", "0-0", "--inject", "missing-frame:3",
                   "--no-persistent-messages", env={"DEFLICKER_OFX_LOG": str(log)}, ok=False)
    assert run.returncode == 1 and not run.of("violation"), run.explain()
    assert run.of("fetch-suite", name="OfxMessageSuite", version=2, found=0), run.explain()
    assert run.statuses() and all(s != OFX_OK for _, s in run.statuses()), run.explain()
    assert not run.of("message"), run.explain()  # a modal dialog from a render thread can hang a host
    assert "source frame 3 is not available from the host" in log.read_text()  # the reason is logged instead


def test_a_progress_bar_that_fails_is_no_cancel(clip, reference, tmp_path):
    # progressUpdate answers kOfxStatFailed when the host shows no bar; only kOfxStatReplyNo means "stop".
    run = run_host("render", built(BUNDLE), clip, "-o", tmp_path / "out.mkv", "--progress-fails")
    assert run.of("progress", what="update"), run.explain()
    assert all(s == OFX_OK for _, s in run.statuses()), run.explain()
    assert_same(tmp_path / "out.mkv", reference, run)


def test_image_size_comes_from_the_images_not_the_region_of_definition(clip, reference, tmp_path):
    run = run_host("render", built(BUNDLE), clip, "-o", tmp_path / "out.mkv", "--rod-pad", "8", "--frames", "0-3")
    assert all(s == OFX_OK for _, s in run.statuses()), run.explain()
    assert_same(tmp_path / "out.mkv", reference[:4], run)
