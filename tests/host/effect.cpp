// effect.cpp: effects and clips (descriptors and instances), the scripted faults.
#include <set>

#include "common.h"
#include "host.h"

namespace {
std::mutex liveMutex;
std::set<const void *> live;  // effects the plugin may legitimately hand back to us
}  // namespace

bool Script::trigger() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (after < 0 || spent_) return false;
  if (firedBy_.empty() && ++calls_ > after) {
    firedBy_ = currentActionToken();
    emit("scripted", {{"what", json("fired")}, {"after", json(after)}, {"action", json(currentAction())}});
  }
  return !firedBy_.empty();
}

void Script::endAction(const std::string &token) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!firedBy_.empty() && firedBy_ == token) spent_ = true;
}

OfxImageClipStruct::OfxImageClipStruct(std::string name_, OfxImageEffectStruct *effect_)
    : name(std::move(name_)), props("clip " + name), effect(effect_) {
  props.declareString(kOfxPropType, {kOfxTypeClip});
  props.declareString(kOfxPropName, {name});
  props.declareString(kOfxPropLabel, {name});
  props.declareString(kOfxPropShortLabel, {name});
  props.declareString(kOfxPropLongLabel, {name});
  props.declareString(kOfxImageEffectPropSupportedComponents, {}, true);
  props.declareInt(kOfxImageEffectPropTemporalClipAccess, {0});
  props.declareInt(kOfxImageClipPropOptional, {0});
  props.declareInt(kOfxImageClipPropIsMask, {0});
  props.declareString(kOfxImageClipPropFieldExtraction, {kOfxImageFieldDoubled});
  props.declareInt(kOfxImageEffectPropSupportsTiles, {1});
}

OfxImageEffectStruct::OfxImageEffectStruct(bool descriptor_, std::string context_, int index_)
    : descriptor(descriptor_), context(std::move(context_)), index(index_), props("effect descriptor"),
      params(descriptor_) {
  props.declareString(kOfxPropType, {kOfxTypeImageEffect});
  for (const char *name : {kOfxPropLabel, kOfxPropShortLabel, kOfxPropLongLabel, kOfxPropVersionLabel,
                           kOfxPropPluginDescription, kOfxImageEffectPluginPropGrouping})
    props.declareString(name, {""});
  props.declareInt(kOfxPropVersion, {}, true);
  props.declareString(kOfxImageEffectPropSupportedContexts, {}, true);
  props.declareString(kOfxImageEffectPropSupportedPixelDepths, {}, true);
  props.declareString(kOfxImageEffectPropClipPreferencesSlaveParam, {}, true);
  props.declareInt(kOfxImageEffectPluginPropSingleInstance, {0});
  props.declareString(kOfxImageEffectPluginRenderThreadSafety, {kOfxImageEffectRenderInstanceSafe});
  props.declareInt(kOfxImageEffectPluginPropHostFrameThreading, {1});
  props.declareInt(kOfxImageEffectPropSupportsMultiResolution, {1});
  props.declareInt(kOfxImageEffectPropSupportsTiles, {1});
  props.declareInt(kOfxImageEffectPropTemporalClipAccess, {0});
  props.declareInt(kOfxImageEffectPluginPropFieldRenderTwiceAlways, {1});
  props.declareInt(kOfxImageEffectPropSupportsMultipleClipDepths, {0});
  props.declareInt(kOfxImageEffectPropSupportsMultipleClipPARs, {0});
  props.declareInt(kOfxImageEffectInstancePropSequentialRender, {0});
  props.declareString(kOfxImageEffectPropOpenGLRenderSupported, {"false"});
  props.declareString(kOfxImageEffectPropCPURenderSupported, {"true"});
  props.declareString(kOfxPluginPropFilePath, {""});
  if (!context.empty()) props.declareString(kOfxImageEffectPropContext, {context});
  std::lock_guard<std::mutex> lock(liveMutex);
  live.insert(this);
}

OfxImageEffectStruct::OfxImageEffectStruct(const OfxImageEffectStruct &desc, int index_)
    : descriptor(false), context(desc.context), index(index_), props(desc.props), params(desc.params) {
  const Host &h = host();
  const Video &v = h.video;
  props.what = "instance " + std::to_string(index);
  props.declareString(kOfxPropType, {kOfxTypeImageEffectInstance});
  props.declarePointer(kOfxPropInstanceData);
  props.declareDouble(kOfxImageEffectPropProjectSize, {double(v.width), double(v.height)});
  props.declareDouble(kOfxImageEffectPropProjectOffset, {0.0, 0.0});
  props.declareDouble(kOfxImageEffectPropProjectExtent, {double(v.width), double(v.height)});
  props.declareDouble(kOfxImageEffectPropProjectPixelAspectRatio, {1.0});
  props.declareDouble(kOfxImageEffectInstancePropEffectDuration, {double(v.frames)});
  props.declareDouble(kOfxImageEffectPropFrameRate, {v.fps});
  props.declareInt(kOfxPropIsInteractive, {0});
  double first = h.options.firstFrame, last = first + v.frames - 1;
  for (const auto &dc : desc.clips) {
    clips.push_back(std::make_unique<Clip>(*dc));
    Clip &c = *clips.back();
    c.effect = this;
    const char *depth = depthOfxName(h.options.depth);
    c.props.declareString(kOfxImageEffectPropPixelDepth, {depth});
    c.props.declareString(kOfxImageEffectPropComponents, {h.options.components});
    c.props.declareString(kOfxImageClipPropUnmappedPixelDepth, {depth});
    c.props.declareString(kOfxImageClipPropUnmappedComponents, {h.options.components});
    const bool rgba = h.options.components == kOfxImageComponentRGBA;
    c.props.declareString(kOfxImageEffectPropPreMultiplication, {!rgba ? kOfxImageOpaque
                                                                 : h.options.premultiplied ? kOfxImagePreMultiplied
                                                                                           : kOfxImageUnPreMultiplied});
    c.props.declareDouble(kOfxImagePropPixelAspectRatio, {1.0});
    c.props.declareDouble(kOfxImageEffectPropFrameRate, {v.fps});
    c.props.declareDouble(kOfxImageEffectPropUnmappedFrameRate, {v.fps});
    c.props.declareDouble(kOfxImageEffectPropFrameRange, {first, last});
    c.props.declareDouble(kOfxImageEffectPropUnmappedFrameRange, {first, last});
    c.props.declareString(kOfxImageClipPropFieldOrder, {kOfxImageFieldNone});
    c.props.declareInt(kOfxImageClipPropConnected, {1});
    c.props.declareInt(kOfxImageClipPropContinuousSamples, {0});
  }
  std::lock_guard<std::mutex> lock(liveMutex);
  live.insert(this);
}

OfxImageEffectStruct::~OfxImageEffectStruct() {
  std::lock_guard<std::mutex> lock(liveMutex);
  live.erase(this);
}

bool isLiveEffect(const void *handle) {
  std::lock_guard<std::mutex> lock(liveMutex);
  return live.count(handle) != 0;
}

Clip *OfxImageEffectStruct::clip(const std::string &name) const {
  for (const auto &c : clips)
    if (c->name == name) return c.get();
  return nullptr;
}

Clip *OfxImageEffectStruct::defineClip(const std::string &name) {
  clips.push_back(std::make_unique<Clip>(name, this));
  return clips.back().get();
}

RenderContext *&renderContext() {
  thread_local RenderContext *context = nullptr;
  return context;
}
