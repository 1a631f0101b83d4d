// params.h: every Deflicker parameter, declared once. DescribeInContext defines them from this
// table and the instance reads them by the same names, so no name is typed twice.
// The script names of the settings params equal deflicker.Settings field names, in
// deflicker.settings.USER_FIELDS order, and are exactly deflicker.server.model_server.PLUGIN_FIELDS (the
// `device` field is not a param: inside a host the engine picks it, "auto").
// tests/test_plugin_build.py parses this table and checks all of that.
// Resolve needs both the range and the display range on numeric params.
#ifndef DEFLICKER_PLUGIN_PARAMS_H
#define DEFLICKER_PLUGIN_PARAMS_H

#include <cstring>
#include <string>

namespace deflicker_ofx {

enum class ParamKind { Double, Int, Bool, Choice, PushButton, Label, Hidden };

struct ParamSpec {
  const char *name;     // script name (= deflicker.Settings field for User params)
  const char *label;
  const char *hint;
  ParamKind kind;
  double def;           // Choice: index into options
  double min, max;      // value range (numeric params)
  double display_min, display_max;
  const char *options;  // Choice: '|'-separated values (= the Settings values)
};

// clang-format off
inline constexpr ParamSpec kParams[] = {
  // name              label                 hint                                                                          kind                   def    min   max     dmin  dmax    options
  {"strength",         "Strength",           "0 leaves the clip unchanged, 1 removes the flicker fully.",                  ParamKind::Double,     1.0,   0.0,  1.0,    0.0,  1.0,    ""},
  {"method",           "Method",             "fast: quick per-clip atlas fit. neural: slower, sturdier atlas.",            ParamKind::Choice,     0,     0,    1,      0,    1,      "fast|neural"},
  {"local_refinement", "Local refinement",   "Fix flicker that varies across the frame using neighbouring frames.",        ParamKind::Bool,       1,     0,    1,      0,    1,      ""},
  {"analysis_size",    "Analysis size",      "Long side, in pixels, of the proxy the analysis works at.",                  ParamKind::Int,        256,   64,   1024,   64,   1024,   ""},
  {"keep_slow",        "Keep slow changes",  "Frames: changes slower than this (fades, exposure ramps) are kept. 0 = off, -1 = auto (1 s).", ParamKind::Int, -1, -1, 1000, -1, 1000, ""},
  {"reanalyze",        "Reanalyze",          "Drop the cached analysis of this clip and analyse it again.",                ParamKind::PushButton, 0,     0,    0,      0,    0,      ""},
  {"status",           "Status",             "State of this clip's analysis.",                                             ParamKind::Label,      0,     0,    0,      0,    0,      ""},
  {"clip_key",         "Clip key",           "Names the cached analysis of the source clip (internal).",                   ParamKind::Hidden,     0,     0,    0,      0,    0,      ""},
};
// clang-format on

// Names the plugin code refers to (each must be a row above).
inline constexpr const char *kStrength = "strength";
inline constexpr const char *kMethod = "method";
inline constexpr const char *kLocalRefinement = "local_refinement";
inline constexpr const char *kAnalysisSize = "analysis_size";
inline constexpr const char *kKeepSlow = "keep_slow";
inline constexpr const char *kReanalyze = "reanalyze";
inline constexpr const char *kStatus = "status";
inline constexpr const char *kClipKey = "clip_key";

/** The row of kParams named `name`. */
inline const ParamSpec &spec(const char *name) {
  for (const ParamSpec &p : kParams)
    if (std::strcmp(p.name, name) == 0) return p;
  return kParams[0];  // unreachable: every name in params.h is a row of kParams
}

/** Value `index` of a '|'-separated options string. */
inline std::string option(const char *options, int index) {
  std::string all(options);
  size_t start = 0;
  for (int i = 0; i < index; ++i) {
    start = all.find('|', start);
    if (start == std::string::npos) return {};
    ++start;
  }
  return all.substr(start, all.find('|', start) - start);
}

}  // namespace deflicker_ofx

#endif  // DEFLICKER_PLUGIN_PARAMS_H
