"""The OFX bundle's build, its exports, the generated parameter table, the OFX header, and the bridge.

The bridge is driven by `deflicker_bridge_check` (ofx_bridge/bridge_check.cpp, built with the
bundle) against tests/_plugin_fake_server.py, which records what crosses the C ABI.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deflicker import settings as dsettings
from deflicker.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("DEFLICKER_BUILD_DIR", ROOT / "build"))
BUNDLE = BUILD / "Deflicker.ofx.bundle"
BINARY = BUNDLE / "Contents" / "Linux-x86-64" / "Deflicker.ofx"  # the loader the host loads
CORE = BINARY.parent / "deflicker_core.so"  # the plugin, the bridge and the embedded Python
CHECK = BUILD / "deflicker_bridge_check"
ENTRY_POINTS = {"OfxGetNumberOfPlugins", "OfxGetPlugin", "OfxSetHost"}
CORE_ENTRY_POINTS = {"dfk_core_get_number_of_plugins", "dfk_core_get_plugin", "dfk_core_set_host"}  # plugin/core_api.h

needs_toolchain = pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which("cmake") is None or shutil.which("g++") is None,
    reason="needs Linux with cmake and g++",
)


@pytest.fixture(scope="module")
def built() -> Path:
    """Configure (once) and build the bundle and the bridge checker; reuse the build dir."""
    if not (BUILD / "CMakeCache.txt").exists():
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(BUILD), "-DCMAKE_BUILD_TYPE=Release",
                        f"-DPython_EXECUTABLE={sys.executable}"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(BUILD), "-j2", "--target", "Deflicker", "deflicker_core",
                    "deflicker_bridge_check"],
                   check=True, capture_output=True)
    return BUNDLE


def _check(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    """Run the bridge checker; {line name: {key: value}} of its `name k=v ...` lines."""
    run_env = dict(os.environ)
    run_env.update({
        "DEFLICKER_OFX_PYTHON_CFG": str(BUNDLE / "Contents" / "Resources" / "python.cfg"),
        "DEFLICKER_OFX_SERVER": "_plugin_fake_server",
        "DEFLICKER_OFX_EXTRA_PATH": str(ROOT / "tests"),
        "DEFLICKER_OFX_LOG": str(tmp_path / "deflicker-ofx.log"),
        "OMP_NUM_THREADS": "1",
    })
    run_env.update(env or {})
    out = subprocess.run([str(CHECK), *args], env=run_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    lines: dict[str, dict[str, str]] = {}
    for line in out.stdout.splitlines():
        name, _, rest = line.partition(" ")
        fields = dict(re.findall(r"(\w+)=(\{.*\}|\S*)", rest))
        if "err=" in rest:
            fields["err"] = rest.split("err=", 1)[1]
        lines[name] = fields
    return lines


# ---------------------------------------------------------------- build products

def _dynamic(binary: Path) -> tuple[set[str], str]:
    """(the dynamic symbols ``binary`` defines, its ``readelf -d`` listing)."""
    out = subprocess.run(["nm", "-D", "--defined-only", str(binary)], check=True, capture_output=True, text=True)
    names = {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}
    return names, subprocess.run(["readelf", "-d", str(binary)], check=True, capture_output=True, text=True).stdout


@needs_toolchain
def test_loader_exports_only_ofx_entry_points_and_links_no_python(built: Path) -> None:
    names, dynamic = _dynamic(BINARY)
    assert names == ENTRY_POINTS
    needed = [line for line in dynamic.splitlines() if "(NEEDED)" in line]
    assert needed and not [line for line in needed if "python" in line.lower() or "libstdc++" in line], needed
    assert "RPATH" not in dynamic and "RUNPATH" not in dynamic  # it finds the core by its own path, not a search


@needs_toolchain
def test_core_exports_only_its_entry_points_and_links_libpython(built: Path) -> None:
    names, dynamic = _dynamic(CORE)
    assert names == CORE_ENTRY_POINTS
    assert "libstdc++" not in dynamic  # linked statically (Resolve ships its own)
    assert "libpython3" in dynamic and "$ORIGIN/../Resources/python/lib" in dynamic


def test_plugin_params_are_the_settings() -> None:
    from deflicker.server import model_server, plugin_spec

    settings_params = [p for p in plugin_spec.PARAMS if p.kind in ("Double", "Int", "Bool", "Choice")]
    names = tuple(p.name for p in settings_params)
    assert names == plugin_spec.PLUGIN_FIELDS == tuple(model_server.PLUGIN_FIELDS)
    assert names == tuple(f for f in dsettings.USER_FIELDS if f in names)
    assert plugin_spec.SIGNATURE_FIELDS == ("method", "analysis_size")  # the analysis settings the plugin has
    defaults = Settings()
    for p in settings_params:
        assert p.label and p.hint
        value = getattr(defaults, p.name)
        if p.kind == "Choice":
            assert p.name == "method" and p.options == dsettings.METHODS
            assert p.options[int(p.default)] == value and p.high == len(p.options) - 1
        else:
            assert p.default == value
    numeric = [p for p in settings_params if p.kind in ("Double", "Int")]
    with pytest.raises(Exception):
        Settings(**{p.name: p.high + 1 for p in numeric})
    Settings(**{p.name: p.high for p in numeric})
    Settings(**{p.name: p.low for p in numeric})
    others = {p.name: p.kind for p in plugin_spec.PARAMS if p not in settings_params}
    assert others == {"reanalyze": "PushButton", "status": "Label", "clip_key": "Hidden"}


@needs_toolchain
def test_build_generates_its_params_and_call_fields_from_the_python_definition(built: Path) -> None:
    from deflicker.server import plugin_header

    for name, make in plugin_header.HEADERS.items():
        assert (BUILD / "generated" / name).read_text() == make(), name
    plist = (BUNDLE / "Contents" / "Info.plist").read_text()
    from deflicker.server import plugin_spec

    assert f"<string>{plugin_spec.PLUGIN_IDENTIFIER}</string>" in plist
    assert f"<string>{'.'.join(map(str, plugin_spec.VERSION))}</string>" in plist


def test_bridge_includes_no_plugin_header() -> None:
    plugin_headers = {p.name for p in (ROOT / "plugin").rglob("*.h")}
    for source in sorted((ROOT / "ofx_bridge").iterdir()):
        for included in re.findall(r'^\s*#\s*include\s*"([^"]+)"', source.read_text(), re.M):
            assert "plugin/" not in included and Path(included).name not in plugin_headers, (source.name, included)


@needs_toolchain
@pytest.mark.parametrize("lang,compiler,std", [("c", "gcc", "-std=c99"), ("c++", "g++", "-std=c++17")])
def test_ofx_header_compiles_with_abi_layout(tmp_path: Path, lang: str, compiler: str, std: str) -> None:
    src = tmp_path / ("t.c" if lang == "c" else "t.cpp")
    src.write_text("""
#include "ofx_api.h"
#include <stddef.h>
#define CHECK(c) typedef char check_##__LINE__[(c) ? 1 : -1];
CHECK(sizeof(void *) != 8 || offsetof(OfxPlugin, mainEntry) == 40)
CHECK(sizeof(void *) != 8 || offsetof(OfxHost, fetchSuite) == 8)
CHECK(sizeof(OfxPropertySuiteV1) == 18 * sizeof(void *))
CHECK(sizeof(OfxImageEffectSuiteV1) == 13 * sizeof(void *))
CHECK(sizeof(OfxParameterSuiteV1) == 18 * sizeof(void *))
CHECK(sizeof(OfxMultiThreadSuiteV1) == 9 * sizeof(void *))
CHECK(sizeof(OfxMessageSuiteV2) == 3 * sizeof(void *))
CHECK(offsetof(OfxImageEffectSuiteV1, clipGetImage) == 5 * sizeof(void *))
CHECK(offsetof(OfxParameterSuiteV1, paramEditEnd) == 17 * sizeof(void *))
CHECK(sizeof(OfxRectD) == 4 * sizeof(double))
static OfxStatus get(OfxParamHandle h, const OfxParameterSuiteV1 *s) { double d; return s->paramGetValueAtTime(h, 1.0, &d); }
int main(void) { return get(0, 0) == kOfxStatOK && kOfxStatErrFormat == 7 ? 0 : 1; }
""".replace("check_##__LINE__", "CHECKNAME(__LINE__)").replace(
        "#define CHECK", "#define CAT(a, b) a##b\n#define CHECKNAME(l) CAT(check_, l)\n#define CHECK"))
    subprocess.run([compiler, std, "-Wall", "-Wextra", "-pedantic", "-Werror", "-Wno-unused-local-typedefs",
                    "-Wno-unused-function", "-I", str(ROOT / "plugin" / "ofx"), "-c", str(src), "-o", str(tmp_path / "t.o")],
                   check=True, capture_output=True)


# ---------------------------------------------------------------- the bridge

def _value(frame: int, y: int, x: int, c: int) -> int:
    """The checker's test pattern (ofx_bridge/bridge_check.cpp `value`), times 255."""
    return (x * 7 + y * 13 + c * 29 + frame * 3) % 256


@needs_toolchain
def test_frames_enter_python_as_top_down_readonly_views(built: Path, tmp_path: Path) -> None:
    lines = _check(tmp_path, "views", env={"PYTHONHOME": "/nonexistent-home", "PYTHONPATH": "/leaked-path"})
    scale = {1: 1.0, 2: 65535 / 255, 4: 1 / 255}
    for bpc, dtype in ((1, "uint8"), (2, "uint16"), (4, "float32")):
        line = lines[f"views{bpc}"]
        assert line["status"] == "0" and line["fetched"] == line["released"] == "1"
        facts = json.loads(line["facts"])
        assert facts["dtype"] == dtype and facts["shape"] == [16, 24, 4]
        assert facts["strides"] == [-24 * 4 * bpc, 4 * bpc, bpc]  # bottom-up host buffer, top-down view
        assert not facts["writeable"] and not facts["owndata"]  # a view of the host's memory, no copy
        assert facts["top_left"] == pytest.approx([_value(0, 0, 0, c) * scale[bpc] for c in range(4)], abs=0.5 if bpc == 2 else 1e-6)
        assert facts["bottom_left"] == pytest.approx([_value(0, 15, 0, c) * scale[bpc] for c in range(4)], abs=0.5 if bpc == 2 else 1e-6)
        assert facts["settings"] == {"strength": 1.0, "method": "fast", "local_refinement": True, "analysis_size": 256,
                                     "keep_slow": -1}
        assert "/leaked-path" not in facts["sys_path"]  # isolated: the host's PYTHONPATH/PYTHONHOME ignored
    assert "started embedded Python" in (tmp_path / "deflicker-ofx.log").read_text()


@needs_toolchain
@pytest.mark.parametrize("bpc,channels,strength", [(1, 4, 1.7), (2, 3, 1.7), (4, 4, 1.7), (1, 3, -0.5), (2, 4, 0.5)])
def test_render_copies_out_with_depth_conversion(built: Path, tmp_path: Path, bpc: int, channels: int, strength: float) -> None:
    line = _check(tmp_path, "render", str(bpc), str(channels), str(strength))["render"]
    assert line["status"] == "0", line
    assert line["mismatches"] == "0"  # rint(clamp(x, 0, 1) * max) for byte/short, float as is
    assert int(line["fetched"]) > 0 and line["fetched"] == line["released"]
    assert int(line["progress"]) == 5  # the first render analysed the 5-frame clip


@needs_toolchain
def test_errors_become_statuses_with_messages(built: Path, tmp_path: Path) -> None:
    lines = _check(tmp_path, "errors")
    for name, needle in (("missing", "not available"), ("narrow", "23x16"), ("nan", "NaN")):
        assert lines[name]["status"] == "3" and lines[name]["err"].startswith("VideoIOError: ") and needle in lines[name]["err"]
        assert lines[name]["fetched"] == lines[name]["released"]
    assert lines["python"]["status"] == "1" and lines["python"]["err"] == "RuntimeError: boom requested"
    assert lines["ok_after"]["status"] == "0"  # the process is unharmed


@needs_toolchain
def test_cancel_is_reported_and_frames_released(built: Path, tmp_path: Path) -> None:
    line = _check(tmp_path, "cancel")["cancel"]
    assert line["status"] == "2" and line["err"].startswith("Cancelled")
    assert line["fetched"] == line["released"]


@needs_toolchain
def test_gil_is_released_while_the_host_fetches(built: Path, tmp_path: Path) -> None:
    line = _check(tmp_path, "threads", "4")["threads"]
    assert line["ok"] == line["of"] == "4"
    assert float(line["seconds"]) < 2.5 * float(line["sleep"])  # serialized fetches would take 4x


@needs_toolchain
def test_attaches_to_a_host_that_already_runs_python(built: Path, tmp_path: Path) -> None:
    lines = _check(tmp_path, "--attach", "views")
    facts = json.loads(lines["views1"]["facts"])
    assert lines["views1"]["status"] == "0" and facts["host_marker"] == "preinitialized"
    assert facts["sys_path"][0] == str(ROOT / "tests") and str(ROOT / "model") in facts["sys_path"]
    assert "attached to the host's Python" in (tmp_path / "deflicker-ofx.log").read_text()
