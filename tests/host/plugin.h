// plugin.h: load a bundle like a real host and drive its actions.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "host.h"

class Plugin {
 public:
  /** dlopen(RTLD_NOW | RTLD_LOCAL) BUNDLE/Contents/<arch>/NAME.ofx, OfxSetHost, OfxGetPlugin, setHost. */
  explicit Plugin(const std::string &bundle);

  /** mainEntry(action, ...) with the action recorded for rule checks; emits an "action" event unless quiet. */
  OfxStatus action(const char *name, const void *handle, PropertySet *in = nullptr, PropertySet *out = nullptr,
                   bool quiet = false);
  void require(OfxStatus status, const char *what, bool allowDefault = true) const;

  void loadAndDescribe();  // Load + Describe
  std::vector<std::string> contexts() const;  // supported by both plugin and host, Filter first
  Effect &describeInContext(const std::string &context);
  /** CreateInstance with persisted values (name=value), then a clip-connected InstanceChanged. */
  std::unique_ptr<Effect> createInstance(const std::string &context, int index,
                                         const std::vector<std::pair<std::string, std::string>> &params);
  /** A copy of `original` as a host's copy/paste makes it: its persisted values, then CreateInstance. */
  std::unique_ptr<Effect> copyInstance(const Effect &original, int index);
  void getClipPreferences(Effect &instance);
  /** Begin/InstanceChanged/EndInstanceChanged for a user edit of a clip or param; the InstanceChanged status. */
  OfxStatus instanceChanged(Effect &instance, const char *type, const std::string &name);
  void destroyInstance(std::unique_ptr<Effect> instance);
  void unload();

  OfxPlugin *ofx = nullptr;
  int count = 0, chosen = 0;
  Effect descriptor{true, "", -1};
  std::map<std::string, std::unique_ptr<Effect>> contextDescriptors;

 private:
  std::string binary_;
  /** CreateInstance, the clip-connected InstanceChanged and GetClipPreferences of a new instance. */
  std::unique_ptr<Effect> create(std::unique_ptr<Effect> instance);
};

/** A JSON object of every property in a set: {"name": [values], ...}. */
Json propsJson(const PropertySet &props);
