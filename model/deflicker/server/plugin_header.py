"""Writes the plugin's generated C++ headers from :mod:`deflicker.server.plugin_spec` (the build runs it).

    python -m deflicker.server.plugin_header OUT_DIR

``OUT_DIR/params_gen.h`` (the plugin: its identity, the kParams table, the names the plugin code
uses, and ``PluginSettings``: the settings read from the params, as they cross to the server,
and the clip signature of those that change the analysis) and ``OUT_DIR/call_fields_gen.h`` (the
bridge: the clip facts and settings that cross to the server, for the embedded dict and the
child message). A file whose text is unchanged is left alone, so nothing rebuilds needlessly.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable, Optional, Sequence

from deflicker.server import plugin_spec
from deflicker.io.atomic import replaced_on_success
from deflicker.server.plugin_spec import Param

_BANNER = ("// {name}: GENERATED at build time by `python -m deflicker.server.plugin_header` from deflicker.server.plugin_spec\n"
           "// (deflicker.settings). Do not edit: change the Python definition.\n")


def _c(text: str) -> str:
    """A C string literal of ``text``."""
    return json.dumps(text)


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _camel(name: str) -> str:
    return "k" + "".join(part.capitalize() for part in name.split("_"))


def _row(p: Param) -> str:
    numbers = ", ".join(_number(v) for v in (p.default, p.low, p.high, p.low, p.high))
    return f"  {{{_c(p.name)}, {_c(p.label)}, {_c(p.hint)}, ParamKind::{p.kind}, {numbers}, {_c('|'.join(p.options))}}},"


def _read(p: Param) -> str:
    """The statement of PluginSettings::read that reads param ``p`` into dfk."""
    ctype = "double" if p.kind == "Double" else "int"
    store = (f"{p.name} = option({_c('|'.join(p.options))}, value); dfk.{p.name} = {p.name}.c_str();"
             if p.kind == "Choice" else f"dfk.{p.name} = value;")
    return f"    {{ {ctype} value = {_number(p.default)}; get({_c(p.name)}, &value); {store} }}"


def _signature_part(p: Param) -> str:
    return p.name if p.kind == "Choice" else f"std::to_string(dfk.{p.name})"


def params_header() -> str:
    """The text of params_gen.h."""
    settings = [p for p in plugin_spec.PARAMS if p.name in plugin_spec.PLUGIN_FIELDS]
    signature = [p for p in settings if p.name in plugin_spec.SIGNATURE_FIELDS]
    major, minor = plugin_spec.VERSION
    lines = [
        _BANNER.format(name="params_gen.h"),
        "// Included by plugin/params.h (after ParamKind, ParamSpec and option()) and nowhere else.",
        "#ifndef DEFLICKER_PARAMS_GEN_H", "#define DEFLICKER_PARAMS_GEN_H", "", "#include <string>", "",
        "namespace deflicker_ofx {", "",
        "// Identity (deflicker.server.plugin_spec).",
        f"inline constexpr const char *kPluginIdentifier = {_c(plugin_spec.PLUGIN_IDENTIFIER)};",
        f"inline constexpr unsigned kVersionMajor = {major};",
        f"inline constexpr unsigned kVersionMinor = {minor};",
        f"inline constexpr const char *kPluginLabel = {_c(plugin_spec.LABEL)};",
        f"inline constexpr const char *kPluginGrouping = {_c(plugin_spec.GROUPING)};",
        f"inline constexpr const char *kPluginDescription = {_c(plugin_spec.DESCRIPTION)};", "",
        "// Every param: name, label, hint, kind, default, min, max, display min, display max, options.",
        "// The settings' defaults and ranges are deflicker.Settings' own.",
        "inline constexpr ParamSpec kParams[] = {", *(_row(p) for p in plugin_spec.PARAMS), "};", "",
        "// Names the plugin code refers to.",
        *(f"inline constexpr const char *{_camel(p.name)} = {_c(p.name)};" for p in plugin_spec.PARAMS), "",
        "/** The plugin's settings as its params hold them: DfkSettings, owning its strings. */",
        "struct PluginSettings {",
        *(f"  std::string {p.name};" for p in settings if p.kind == "Choice"),
        "  DfkSettings dfk{};", "",
        "  PluginSettings() = default;",
        "  PluginSettings(const PluginSettings &) = delete;  // dfk points into this object's strings",
        "  PluginSettings &operator=(const PluginSettings &) = delete;", "",
        "  /** Read every setting param: get(name, &value), value an int or a double, left as is on failure. */",
        "  template <class Get>", "  void read(Get &&get) {", *(_read(p) for p in settings), "  }", "",
        "  /** The settings that change the analysis (deflicker.settings.AnalysisSettings), as text. */",
        "  std::string analysis_signature() const {",
        "    return " + ' + "/" + '.join(_signature_part(p) for p in signature) + ";", "  }",
        "};", "", "}  // namespace deflicker_ofx", "", "#endif  // DEFLICKER_PARAMS_GEN_H", "",
    ]
    return "\n".join(lines)


def _visit(owner: str, name: str, kind: type) -> str:
    """The visit(name, value) statement of one field of ``owner`` (a pointer or a reference)."""
    value = f"{owner}{name}"
    if kind is str:
        return f"  if ({value} != nullptr) visit({_c(name)}, std::string({value}));"
    if kind is bool:
        return f"  visit({_c(name)}, {value} != 0);"
    if kind is int:
        return f"  visit({_c(name)}, static_cast<long long>({value}));"
    return f"  visit({_c(name)}, {value});"


def call_fields_header() -> str:
    """The text of call_fields_gen.h."""
    lines = [
        _BANNER.format(name="call_fields_gen.h"),
        "// The fields of DfkClipInfo and DfkSettings as the server reads them (clip facts and deflicker.Settings",
        "// field names), for both ways of reaching the server: the embedded interpreter (bridge.cpp: a Python",
        "// dict) and the child process (child_client.cpp: a message).",
        "#ifndef DEFLICKER_CALL_FIELDS_GEN_H", "#define DEFLICKER_CALL_FIELDS_GEN_H", "",
        '#include "bridge.h"', "", "#include <string>", "", "namespace dfk {", "",
        "/** visit(name, value) for every clip fact: integers as long long, the rate as double, flags as bool. */",
        "template <class Visit>", "void for_each_clip_fact(const DfkClipInfo &info, Visit &&visit) {",
        *(_visit("info.", name, kind) for name, kind in plugin_spec.clip_fact_types().items()), "}", "",
        "/** visit(name, value) for every setting (none for a null pointer; no string that is null). */",
        "template <class Visit>", "void for_each_setting(const DfkSettings *s, Visit &&visit) {",
        "  if (s == nullptr) return;",
        *(_visit("s->", name, kind) for name, kind in plugin_spec.setting_types().items()), "}", "",
        "}  // namespace dfk", "", "#endif  // DEFLICKER_CALL_FIELDS_GEN_H", "",
    ]
    return "\n".join(lines)


#: The generated headers, by file name.
HEADERS: dict[str, Callable[[], str]] = {"params_gen.h": params_header, "call_fields_gen.h": call_fields_header}


def write_headers(out_dir: Path) -> list[Path]:
    """Write every header into ``out_dir`` (made if missing) where its text changed; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in HEADERS.items():
        path, text = out_dir / name, make()
        if path.exists() and path.read_text() == text:
            continue
        with replaced_on_success(path) as tmp:
            tmp.write_text(text)
        written.append(path)
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deflicker.server.plugin_header", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder of the generated headers (build/generated)")
    args = parser.parse_args(argv)
    write_headers(args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
