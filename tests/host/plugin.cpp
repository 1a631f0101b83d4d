// plugin.cpp: bundle loading and the lifecycle actions (load, describe, instances, clip preferences).
#include "plugin.h"

#include <algorithm>
#include <atomic>
#include <dlfcn.h>
#include <sys/stat.h>

#include "common.h"

namespace {

// The bundle's binary folder for this OS (the OpenFX packaging names).
#if defined(__APPLE__)
constexpr const char *kArch = "MacOS";
#elif defined(__aarch64__)
constexpr const char *kArch = "Linux-aarch64";
#else
constexpr const char *kArch = "Linux-x86-64";
#endif

bool isDirectory(const std::string &path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

/** BUNDLE (NAME.ofx.bundle) -> BUNDLE/Contents/<arch>/NAME.ofx; a .ofx path is used as is. */
std::string binaryPath(std::string bundle) {
  while (bundle.size() > 1 && bundle.back() == '/') bundle.pop_back();
  if (!isDirectory(bundle)) return bundle;
  std::string base = bundle.substr(bundle.find_last_of('/') + 1);
  const std::string suffix = ".bundle";
  if (base.size() <= suffix.size() || base.compare(base.size() - suffix.size(), suffix.size(), suffix) != 0)
    throw HostError(bundle + " is not a NAME.ofx.bundle directory", 3);
  return bundle + "/Contents/" + kArch + "/" + base.substr(0, base.size() - suffix.size());
}

}  // namespace

Plugin::Plugin(const std::string &bundle) : binary_(binaryPath(bundle)) {
  // Like a real host: local symbols, resolved now. The library is never dlclose()d (an embedded
  // interpreter and its threads cannot be unloaded safely), as Resolve and Nuke keep plugins loaded.
  void *lib = dlopen(binary_.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) throw HostError(std::string("cannot load plugin: ") + dlerror(), 3);
  auto setHost = reinterpret_cast<OfxSetHostFn>(dlsym(lib, "OfxSetHost"));
  auto getCount = reinterpret_cast<OfxGetNumberOfPluginsFn>(dlsym(lib, "OfxGetNumberOfPlugins"));
  auto getPlugin = reinterpret_cast<OfxGetPluginFn>(dlsym(lib, "OfxGetPlugin"));
  if (!getCount || !getPlugin) throw HostError(binary_ + " does not export OfxGetNumberOfPlugins/OfxGetPlugin", 3);
  if (setHost) require(setHost(&host().ofx), "OfxSetHost");
  count = getCount();
  // A plugin that cannot work here (e.g. a loader whose core is missing) reports none, like hosts expect.
  if (count <= 0) throw HostError(binary_ + " reports no plugins (OfxGetNumberOfPlugins() == " + std::to_string(count) + ")", 3);
  for (chosen = 0; chosen < count; ++chosen) {
    OfxPlugin *p = getPlugin(chosen);
    if (p && p->pluginApi && std::string(p->pluginApi) == kOfxImageEffectPluginApi &&
        p->apiVersion == kOfxImageEffectPluginApiVersion) {
      ofx = p;
      break;
    }
  }
  if (!ofx || !ofx->mainEntry || !ofx->setHost) throw HostError(binary_ + " has no usable OfxImageEffectPluginAPI v1 plugin", 3);
  emit("plugin", {{"id", json(ofx->pluginIdentifier)}, {"version", jsonArray({json(int(ofx->pluginVersionMajor)), json(int(ofx->pluginVersionMinor))})},
                  {"api", json(ofx->pluginApi)}, {"api_version", json(ofx->apiVersion)}, {"index", json(chosen)},
                  {"count", json(count)}, {"set_host_export", json(setHost ? 1 : 0)}, {"binary", json(binary_)}});
  ofx->setHost(&host().ofx);
  // A real host reports the bundle directory, e.g. /usr/OFX/Plugins/NAME.ofx.bundle.
  const size_t contents = binary_.find("/Contents/");
  std::string dir = contents == std::string::npos ? std::string() : binary_.substr(0, contents);
  if (host().options.filePathGiven) dir = host().options.filePath;
  descriptor.props.declareString(kOfxPluginPropFilePath, {dir});
  emit("file-path", {{"OfxPluginPropFilePath", json(dir)}});
}

OfxStatus Plugin::action(const char *name, const void *handle, PropertySet *in, PropertySet *out, bool quiet) {
  static std::atomic<long> sequence{0};
  std::string savedAction = currentAction(), savedToken = currentActionToken();
  currentAction() = name;
  currentActionToken() = std::string(name) + "#" + std::to_string(++sequence);
  OfxStatus status = ofx->mainEntry(name, handle, in, out);
  checkImagesReleased(currentActionToken());
  host().abort.endAction(currentActionToken());
  host().cancel.endAction(currentActionToken());
  currentAction() = savedAction;
  currentActionToken() = savedToken;
  const Effect *fx = isLiveEffect(handle) ? static_cast<const Effect *>(handle) : nullptr;
  if (!quiet) emit("action", {{"name", json(name)}, {"instance", json(fx ? fx->index : -1)}, {"status", json(status)}});
  return status;
}

void Plugin::require(OfxStatus status, const char *what, bool allowDefault) const {
  if (status == kOfxStatOK || (allowDefault && status == kOfxStatReplyDefault)) return;
  throw HostError(std::string(what) + " failed with OFX status " + std::to_string(status));
}

void Plugin::loadAndDescribe() {
  require(action(kOfxActionLoad, nullptr), kOfxActionLoad);
  require(action(kOfxActionDescribe, &descriptor), kOfxActionDescribe, false);
}

std::vector<std::string> Plugin::contexts() const {
  std::vector<std::string> out;
  auto mine = descriptor.props.getStrings(kOfxImageEffectPropSupportedContexts);
  for (const char *c : {kOfxImageEffectContextFilter, kOfxImageEffectContextGeneral})
    if (std::find(mine.begin(), mine.end(), c) != mine.end()) out.push_back(c);
  return out;
}

Effect &Plugin::describeInContext(const std::string &context) {
  auto &slot = contextDescriptors[context];
  if (slot) return *slot;
  slot = std::make_unique<Effect>(true, context, -1);
  slot->props = descriptor.props;
  slot->props.declareString(kOfxImageEffectPropContext, {context});
  slot->props.what = "context descriptor " + context;
  PropertySet in("inArgs");
  in.declareString(kOfxImageEffectPropContext, {context});
  require(action(kOfxImageEffectActionDescribeInContext, slot.get(), &in), "DescribeInContext", false);
  for (const char *name : {kOfxImageEffectSimpleSourceClipName, kOfxImageEffectOutputClipName})
    if (!slot->clip(name)) throw HostError(std::string("the plugin defined no '") + name + "' clip in " + context);
  return *slot;
}

std::unique_ptr<Effect> Plugin::createInstance(const std::string &context, int index,
                                               const std::vector<std::pair<std::string, std::string>> &params) {
  auto instance = std::make_unique<Effect>(describeInContext(context), index);
  for (const auto &kv : params) {
    Param *p = instance->params.find(kv.first);
    if (!p) throw HostError("--param " + kv.first + ": the plugin has no such parameter", 2);
    p->setFromText(kv.second);
  }
  return create(std::move(instance));
}

std::unique_ptr<Effect> Plugin::copyInstance(const Effect &original, int index) {
  auto instance = std::make_unique<Effect>(describeInContext(original.context), index);
  for (const auto &from : original.params.params) {
    if (!from->components()) continue;
    Param *to = instance->params.find(from->name);
    if (from->isString()) to->setText(from->text());
    else to->setNumbers(from->numbers());
  }
  emit("copied", {{"from", json(original.index)}, {"to", json(index)}});
  return create(std::move(instance));
}

std::unique_ptr<Effect> Plugin::create(std::unique_ptr<Effect> instance) {
  require(action(kOfxActionCreateInstance, instance.get()), "CreateInstance");
  require(instanceChanged(*instance, kOfxTypeClip, kOfxImageEffectSimpleSourceClipName), "InstanceChanged(clip)");
  getClipPreferences(*instance);
  return instance;
}

void Plugin::getClipPreferences(Effect &instance) {
  const Host &h = host();
  PropertySet out("outArgs");
  for (const auto &c : instance.clips) {
    out.declareString((kOfxImageClipPropComponentsPrefix + c->name).c_str(), {h.options.components});
    out.declareString((kOfxImageClipPropDepthPrefix + c->name).c_str(), {depthOfxName(h.options.depth)});
    out.declareDouble((kOfxImageClipPropPARPrefix + c->name).c_str(), {1.0});
  }
  out.declareDouble(kOfxImageEffectPropFrameRate, {h.video.fps});
  out.declareString(kOfxImageEffectPropPreMultiplication, {kOfxImageUnPreMultiplied});  // unless the plugin says otherwise
  out.declareInt(kOfxImageClipPropContinuousSamples, {0});
  out.declareInt(kOfxImageEffectFrameVarying, {0});
  require(action(kOfxImageEffectActionGetClipPreferences, &instance, nullptr, &out), "GetClipPreferences");
  for (const auto &c : instance.clips) {
    std::string comps = out.getString((kOfxImageClipPropComponentsPrefix + c->name).c_str());
    std::string depth = out.getString((kOfxImageClipPropDepthPrefix + c->name).c_str());
    auto supported = c->props.getStrings(kOfxImageEffectPropSupportedComponents);
    if ((comps != kOfxImageComponentRGBA && comps != kOfxImageComponentRGB) ||
        std::find(supported.begin(), supported.end(), comps) == supported.end())
      throw HostError("GetClipPreferences: components " + comps + " on " + c->name + " (host or clip does not support them)");
    if (std::find(h.supportedDepths.begin(), h.supportedDepths.end(), depth) == h.supportedDepths.end())
      throw HostError("GetClipPreferences asked for unsupported depth " + depth + " on " + c->name);
    c->props.declareString(kOfxImageEffectPropComponents, {comps});
    c->props.declareString(kOfxImageEffectPropPixelDepth, {depth});
  }
  std::string premult = out.getString(kOfxImageEffectPropPreMultiplication);
  if (premult != kOfxImagePreMultiplied && premult != kOfxImageUnPreMultiplied && premult != kOfxImageOpaque)
    throw HostError("GetClipPreferences: unknown premultiplication " + premult);
  instance.clip(kOfxImageEffectOutputClipName)->props.declareString(kOfxImageEffectPropPreMultiplication, {premult});
  emit("clip-preferences", {{"instance", json(instance.index)}, {"prefs", propsJson(out)}});
}

OfxStatus Plugin::instanceChanged(Effect &instance, const char *type, const std::string &name) {
  PropertySet in("inArgs");
  in.declareString(kOfxPropType, {type});
  in.declareString(kOfxPropName, {name});
  in.declareString(kOfxPropChangeReason, {kOfxChangeUserEdited});
  in.declareDouble(kOfxPropTime, {double(host().options.firstFrame)});
  in.declareDouble(kOfxImageEffectPropRenderScale, {1.0, 1.0});
  require(action(kOfxActionBeginInstanceChanged, &instance, &in), "BeginInstanceChanged");
  OfxStatus status = action(kOfxActionInstanceChanged, &instance, &in);
  require(action(kOfxActionEndInstanceChanged, &instance, &in), "EndInstanceChanged");
  return status == kOfxStatReplyDefault ? kOfxStatOK : status;
}

void Plugin::destroyInstance(std::unique_ptr<Effect> instance) {
  require(action(kOfxActionDestroyInstance, instance.get()), "DestroyInstance");
}

void Plugin::unload() { require(action(kOfxActionUnload, nullptr), "Unload"); }

Json propsJson(const PropertySet &props) {
  auto names = props.names();
  std::sort(names.begin(), names.end());
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i)
    out += (i ? ", " : "") + json(names[i]).text + ": " + props.describe(names[i].c_str());
  return {out + "}"};
}
