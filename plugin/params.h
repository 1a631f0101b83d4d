// params.h: every Deflicker parameter and the plugin's identity. The table itself (kParams), the
// names the plugin code uses, the identity (kPluginIdentifier, kVersionMajor/Minor, kPluginLabel)
// and PluginSettings (the settings read from the params, and the clip signature of those that
// change the analysis) are GENERATED at build time from the one Python definition,
// deflicker.server.plugin_spec (deflicker.settings), into build/generated/params_gen.h. DescribeInContext
// defines the params from that table and the instance reads them by the same names.
// Resolve needs both the range and the display range on numeric params.
#ifndef DEFLICKER_PLUGIN_PARAMS_H
#define DEFLICKER_PLUGIN_PARAMS_H

#include "../ofx_bridge/bridge.h"  // DfkSettings

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

#include "params_gen.h"  // generated: kParams, the param names, the identity, PluginSettings

#endif  // DEFLICKER_PLUGIN_PARAMS_H
