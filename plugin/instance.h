// instance.h: per-instance state and what one action needs from it: settings, source clip
// facts, the bridge callbacks over the host, the clip key, and error reporting.
#ifndef DEFLICKER_PLUGIN_INSTANCE_H
#define DEFLICKER_PLUGIN_INSTANCE_H

#include "host.h"
#include "params.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <vector>

namespace deflicker_ofx {

inline constexpr size_t kMessageSize = 1024;

inline std::atomic<bool> g_python_used{false};  // Python is started lazily; purge/destroy skip it if never used

/** A fresh random id, 16 hex digits. */
inline std::string random_id() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(gen()));
  return buf;
}

/** Per-instance state, stored in kOfxPropInstanceData. */
struct Instance {
  // Names this live instance to the server, which keeps a clip while any instance uses it. Never
  // persisted: a copy the host makes of a node (same persisted params) is another live instance.
  const std::string live_id = random_id();
  OfxImageEffectHandle effect = nullptr;
  OfxImageClipHandle source = nullptr;
  OfxImageClipHandle output = nullptr;
  OfxParamSetHandle params = nullptr;
  std::mutex mutex;      // guards key/signature and serializes open_clip per instance
  std::string key;       // server clip key for `signature`
  std::string signature; // clip facts + analysis settings the key was opened with
  std::atomic<bool> error_shown{false};
};

inline Instance *instance_of(OfxImageEffectHandle effect) {
  OfxPropertySetHandle props = nullptr;
  suites().effect->getPropertySet(effect, &props);
  void *data = nullptr;
  suites().prop->propGetPointer(props, kOfxPropInstanceData, 0, &data);
  return static_cast<Instance *>(data);
}

inline OfxParamHandle param_handle(const Instance &inst, const char *name) {
  OfxParamHandle handle = nullptr;
  suites().param->paramGetHandle(inst.params, name, &handle, nullptr);
  return handle;
}

inline std::string param_string(const Instance &inst, const char *name) {
  char *value = nullptr;
  suites().param->paramGetValue(param_handle(inst, name), &value);
  return value != nullptr ? value : "";
}

inline void set_param_string(const Instance &inst, const char *name, const std::string &value) {
  if (param_string(inst, name) != value) suites().param->paramSetValue(param_handle(inst, name), value.c_str());
}

/** The plugin's settings at time t (params_gen.h: read from the params by the generated code). */
struct SettingsAt : PluginSettings {
  SettingsAt(const Instance &inst, OfxTime t) {
    read([&](const char *name, auto *value) { suites().param->paramGetValueAtTime(param_handle(inst, name), t, value); });
  }
};

/** Facts of the source clip at time t: size, layout, frame range, premultiplication. The size is
 *  that of the image the host hands over at t (its bounds) where `from_image`, else the region of
 *  definition's: hosts may report a region of definition in other units or larger than the images. */
struct SourceFacts {
  DfkClipInfo info{};
  double first = 0.0;  // time of source index 0
  std::string components, depth;

  SourceFacts(const Instance &inst, OfxTime t, bool from_image) {
    OfxPropertySetHandle props = nullptr;
    suites().effect->clipGetPropertySet(inst.source, &props);
    OfxRectD rod{0, 0, 0, 0};
    suites().effect->clipGetRegionOfDefinition(inst.source, t, &rod);
    const std::vector<double> range = get_doubles(props, kOfxImageEffectPropFrameRange);
    components = get_string(props, kOfxImageEffectPropComponents);
    depth = get_string(props, kOfxImageEffectPropPixelDepth);
    first = range.size() == 2 ? std::ceil(range[0]) : 0.0;
    info.width = static_cast<int>(std::lround(rod.x2 - rod.x1));
    info.height = static_cast<int>(std::lround(rod.y2 - rod.y1));
    if (from_image) {
      const ClipImage image(inst.source, t);
      const DfkImage view = image.ok() ? image.view() : DfkImage{};
      if (view.data != nullptr) {
        info.width = view.width;
        info.height = view.height;
      }
    }
    info.channels = components == kOfxImageComponentRGB ? 3 : 4;
    info.frame_count = range.size() == 2 ? static_cast<int>(std::floor(range[1]) - first) + 1 : 0;
    info.fps = get_double(props, kOfxImageEffectPropFrameRate, 0, 24.0);
    info.bit_depth = depth == kOfxBitDepthByte ? 8 : depth == kOfxBitDepthShort ? 16 : 32;
    info.premultiplied = info.channels == 4 && get_string(props, kOfxImageEffectPropPreMultiplication) == kOfxImagePreMultiplied;
  }

  /** The clip facts and the settings that change the analysis: a new one needs a new clip key. */
  std::string signature(const PluginSettings &s) const {
    return std::to_string(info.width) + "x" + std::to_string(info.height) + "x" + std::to_string(info.channels) + "/" +
           std::to_string(info.frame_count) + "@" + std::to_string(info.fps) + "/" + std::to_string(info.bit_depth) +
           "/" + std::to_string(first) + (info.premultiplied ? "/premultiplied/" : "/") + s.analysis_signature();
  }
};

/** Bridge callbacks of one action: source frames by index, host progress, abort. */
struct HostContext {
  const Instance *inst;
  double first;
  ProgressScope progress;
  bool user_cancelled = false;

  HostContext(const Instance &i, double first_time, const char *label)
      : inst(&i), first(first_time), progress(i.effect, label) {}

  DfkCallbacks callbacks() {
    DfkCallbacks cb{};
    cb.ctx = this;
    cb.fetch = [](void *ctx, int index, DfkImage *image, void **token) -> int {
      auto *self = static_cast<HostContext *>(ctx);
      ClipImage frame(self->inst->source, self->first + index);
      if (!frame.ok()) return 1;
      *image = frame.view();
      *token = frame.release();  // the bridge hands it back to `release`
      return 0;
    };
    cb.release = [](void *, void *token) { suites().effect->clipReleaseImage(static_cast<OfxPropertySetHandle>(token)); };
    cb.progress = [](void *ctx, double fraction, const char *) {
      auto *self = static_cast<HostContext *>(ctx);
      if (!self->progress.update(fraction)) self->user_cancelled = true;
    };
    cb.cancel = [](void *ctx) -> int {
      auto *self = static_cast<HostContext *>(ctx);
      return self->user_cancelled || suites().effect->abort(self->inst->effect) != 0;
    };
    return cb;
  }
};

/** OFX status for a bridge failure; reports it to the user unless the host cancelled (a dialog only
 *  where `may_open_dialog`: never from a render thread). */
inline OfxStatus fail(Instance &inst, DfkStatus status, const char *message, bool may_open_dialog) {
  if (status == DFK_CANCELLED) return kOfxStatFailed;  // the bridge logged it; the host asked for it
  post_error(inst.effect, std::string("Deflicker: ") + message, may_open_dialog);
  inst.error_shown = true;
  return status == DFK_BAD_FRAME ? kOfxStatErrFormat : kOfxStatFailed;
}

/** The server key of the source clip under the current settings (opened once per signature). */
inline DfkStatus clip_key(Instance &inst, const SourceFacts &src, const SettingsAt &settings, HostContext &ctx,
                   bool reopen, std::string &key, char *err) {
  const std::string signature = src.signature(settings);
  const std::lock_guard<std::mutex> lock(inst.mutex);
  if (!reopen && signature == inst.signature && !inst.key.empty()) {
    key = inst.key;
    return DFK_OK;
  }
  char buf[512] = {0};
  const DfkCallbacks cb = ctx.callbacks();
  g_python_used = true;
  const DfkStatus status = dfk_open_clip(inst.live_id.c_str(), &src.info, &settings.dfk, &cb,
                                         param_string(inst, kClipKey).c_str(), buf, sizeof buf, err, kMessageSize);
  if (status != DFK_OK) return status;
  inst.key = key = buf;
  inst.signature = signature;
  return DFK_OK;
}

}  // namespace deflicker_ofx

#endif  // DEFLICKER_PLUGIN_INSTANCE_H
