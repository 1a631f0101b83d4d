// DeflickerPlugin.cpp: the OpenFX image effect's instance actions and the core's entry points
// (dfk_core_*, which the loader Deflicker.ofx forwards to). Thin: it reads params and clip facts
// and forwards frames through the ofx_bridge C ABI; the only pixel work is the bridge's copy into
// the output image. Every entry point catches everything.
#include "core_api.h"
#include "describe.h"
#include "host.h"
#include "instance.h"
#include "params.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace deflicker_ofx {
namespace {

constexpr int kMaxFrameRanges = 64;  // GetFramesNeeded ranges at most (fingerprint frames + spans)

/** CreateInstance: handles only. No param is set here (hosts may be mid-load or mid-copy). */
OfxStatus create_instance(OfxImageEffectHandle effect) {
  auto inst = std::make_unique<Instance>();
  inst->effect = effect;
  suites().effect->getParamSet(effect, &inst->params);
  suites().effect->clipGetHandle(effect, kOfxImageEffectSimpleSourceClipName, &inst->source, nullptr);
  suites().effect->clipGetHandle(effect, kOfxImageEffectOutputClipName, &inst->output, nullptr);
  OfxPropertySetHandle props = nullptr;
  suites().effect->getPropertySet(effect, &props);
  suites().prop->propSetPointer(props, kOfxPropInstanceData, 0, inst.release());  // owned until DestroyInstance
  return kOfxStatOK;
}

OfxStatus destroy_instance(OfxImageEffectHandle effect) {
  std::unique_ptr<Instance> inst(instance_of(effect));
  if (inst && g_python_used) {
    char err[kMessageSize];
    dfk_close_instance(inst->live_id.c_str(), err, sizeof err);
  }
  return kOfxStatOK;
}

OfxStatus clip_preferences(Instance &inst, OfxPropertySetHandle out) {
  set_int(out, kOfxImageEffectFrameVarying, 1);  // output at t depends on other frames
  OfxPropertySetHandle props = nullptr;
  suites().effect->clipGetPropertySet(inst.source, &props);
  const std::string comps = get_string(props, kOfxImageEffectPropComponents);
  if (comps == kOfxImageComponentRGB || comps == kOfxImageComponentRGBA)
    set_string(out, (std::string(kOfxImageClipPropComponentsPrefix) + kOfxImageEffectOutputClipName).c_str(), comps);
  // The output is premultiplied exactly when the source is (the correction runs on straight colour in between).
  const std::string premult = get_string(props, kOfxImageEffectPropPreMultiplication);
  if (premult == kOfxImagePreMultiplied || premult == kOfxImageUnPreMultiplied || premult == kOfxImageOpaque)
    set_string(out, kOfxImageEffectPropPreMultiplication, premult);
  return kOfxStatOK;
}

OfxStatus time_domain(Instance &inst, OfxPropertySetHandle out) {
  OfxPropertySetHandle props = nullptr;
  suites().effect->clipGetPropertySet(inst.source, &props);
  const std::vector<double> range = get_doubles(props, kOfxImageEffectPropFrameRange);
  if (range.size() != 2) return kOfxStatReplyDefault;
  suites().prop->propSetDoubleN(out, kOfxImageEffectPropFrameRange, 2, range.data());
  return kOfxStatOK;
}

OfxStatus is_identity(Instance &inst, OfxPropertySetHandle in, OfxPropertySetHandle out) {
  const OfxTime t = get_double(in, kOfxPropTime);
  double strength = 1.0;
  suites().param->paramGetValueAtTime(param_handle(inst, kStrength), t, &strength);
  if (strength > 0.0) return kOfxStatReplyDefault;
  set_string(out, kOfxPropName, kOfxImageEffectSimpleSourceClipName);
  set_double(out, kOfxPropTime, t);
  return kOfxStatOK;
}

/** GetFramesNeeded: the source frames render(t) reads, as ranges. Before the clip's segment is
 *  analysed, the fingerprint frames and the span of t's segment(s) (answered from the clip's facts
 *  even before the clip is opened); once analysed, the window around t. */
OfxStatus frames_needed(Instance &inst, OfxPropertySetHandle in, OfxPropertySetHandle out) {
  const OfxTime t = get_double(in, kOfxPropTime);
  std::string key;
  {
    const std::lock_guard<std::mutex> lock(inst.mutex);
    key = inst.key;
  }
  if (key.empty()) key = param_string(inst, kClipKey);  // another instance may have opened it
  const SourceFacts src(inst, t, false);  // its first frame only: no image outside Render
  if (src.info.frame_count <= 0) return kOfxStatReplyDefault;
  const SettingsAt settings(inst, t);
  int ranges[2 * kMaxFrameRanges];
  int count = 0;
  char err[kMessageSize];
  g_python_used = true;
  const int index = static_cast<int>(std::lround(t - src.first));
  if (dfk_frames_needed(key.c_str(), &src.info, index, &settings.dfk, ranges, kMaxFrameRanges, &count, err,
                        sizeof err) != DFK_OK) {
    dfk_log(2, (std::string("frames_needed: ") + err).c_str());
    return kOfxStatReplyDefault;
  }
  std::vector<double> times;
  for (int i = 0; i < count && i < kMaxFrameRanges; ++i) {
    times.push_back(src.first + ranges[2 * i]);
    times.push_back(src.first + ranges[2 * i + 1]);
  }
  if (times.empty()) return kOfxStatReplyDefault;
  const std::string name = std::string(kOfxImageClipPropFrameRangePrefix) + kOfxImageEffectSimpleSourceClipName;
  suites().prop->propSetDoubleN(out, name.c_str(), static_cast<int>(times.size()), times.data());
  return kOfxStatOK;
}

OfxStatus render(Instance &inst, OfxPropertySetHandle in) {
  const OfxTime t = get_double(in, kOfxPropTime);
  const SourceFacts src(inst, t, true);
  const SettingsAt settings(inst, t);
  HostContext ctx(inst, src.first, "Deflicker: analysing clip");
  ClipImage output(inst.output, t);
  const DfkImage dst = output.ok() ? output.view() : DfkImage{};
  if (dst.data == nullptr) {
    post_error(inst.effect, "Deflicker: the host gave no usable output image", false);
    return kOfxStatFailed;
  }
  char err[kMessageSize] = {0};
  std::string key;
  const int index = static_cast<int>(std::lround(t - src.first));
  const DfkCallbacks cb = ctx.callbacks();
  DfkStatus status = DFK_UNKNOWN_CLIP;
  // Twice at most: a clip the server no longer holds (dropped with another instance) is opened again.
  for (int attempt = 0; attempt < 2 && status == DFK_UNKNOWN_CLIP; ++attempt) {
    status = clip_key(inst, src, settings, ctx, attempt > 0, key, err);
    if (status == DFK_OK) status = dfk_render(key.c_str(), index, &settings.dfk, &cb, &dst, err, sizeof err);
  }
  if (status != DFK_OK) return fail(inst, status, err, false);
  if (inst.error_shown.exchange(false)) clear_error(inst.effect);
  return kOfxStatOK;
}

/** Reanalyze button: drop the cache, analyse every source frame now, report in the status line. */
OfxStatus reanalyze(Instance &inst, OfxTime t) {
  const SourceFacts src(inst, t, true);
  const SettingsAt settings(inst, t);
  HostContext ctx(inst, src.first, "Deflicker: analysing clip");
  char err[kMessageSize] = {0};
  std::string key;
  DfkStatus status = clip_key(inst, src, settings, ctx, true, key, err);
  if (status == DFK_OK) {
    const DfkCallbacks cb = ctx.callbacks();
    status = dfk_analyze(key.c_str(), 1, &cb, err, sizeof err);
  }
  const EditBlock edit(inst.params, "Reanalyze");
  if (!key.empty()) set_param_string(inst, kClipKey, key);
  if (status != DFK_OK) {
    set_param_string(inst, kStatus, status == DFK_CANCELLED ? "cancelled" : std::string("failed: ") + err);
    return fail(inst, status, err, true);
  }
  char text[kMessageSize] = {0};
  dfk_status(key.c_str(), text, sizeof text);
  set_param_string(inst, kStatus, text);
  if (inst.error_shown.exchange(false)) clear_error(inst.effect);
  return kOfxStatOK;
}

OfxStatus instance_changed(Instance &inst, OfxPropertySetHandle in) {
  const std::string type = get_string(in, kOfxPropType);
  const std::string name = get_string(in, kOfxPropName);
  const std::string reason = get_string(in, kOfxPropChangeReason);
  // Any change may fix what failed; a persistent message left standing stops Nuke rendering.
  if ((type == kOfxTypeClip || type == kOfxTypeParameter) && inst.error_shown.exchange(false)) clear_error(inst.effect);
  if (type == kOfxTypeClip) {
    const std::lock_guard<std::mutex> lock(inst.mutex);
    inst.key.clear();  // the source may be a different clip now
    inst.signature.clear();
    return kOfxStatOK;
  }
  if (type == kOfxTypeParameter && name == kReanalyze && reason == kOfxChangeUserEdited)
    return reanalyze(inst, get_double(in, kOfxPropTime));
  return kOfxStatReplyDefault;
}

/** Before save/copy: persist the clip key and refresh the status line. */
OfxStatus sync_private_data(Instance &inst) {
  std::string key;
  {
    const std::lock_guard<std::mutex> lock(inst.mutex);
    key = inst.key;
  }
  if (key.empty()) return kOfxStatOK;
  char text[kMessageSize] = {0};
  const bool have_status = dfk_status(key.c_str(), text, sizeof text) == DFK_OK;
  const EditBlock edit(inst.params, "Sync");
  set_param_string(inst, kClipKey, key);
  if (have_status) set_param_string(inst, kStatus, text);
  return kOfxStatOK;
}

OfxStatus load() {
  if (!fetch_suites()) {
    dfk_log(3, "the host lacks a mandatory suite (property, image effect or parameter)");
    return kOfxStatErrMissingHostFeature;
  }
  dfk_log(1, (std::string(kPluginIdentifier) + " " + std::to_string(kVersionMajor) + "." + std::to_string(kVersionMinor) +
              " loaded; " + describe_host())
                 .c_str());
  return kOfxStatOK;
}

OfxStatus dispatch(const char *action, OfxImageEffectHandle effect, OfxPropertySetHandle in, OfxPropertySetHandle out) {
  const auto is = [action](const char *name) { return std::strcmp(action, name) == 0; };
  if (is(kOfxActionLoad)) return load();
  if (is(kOfxActionUnload)) return kOfxStatOK;  // never finalize Python: extension modules do not survive it
  if (is(kOfxActionDescribe)) return describe(effect);
  if (is(kOfxImageEffectActionDescribeInContext)) return describe_in_context(effect);
  if (is(kOfxActionCreateInstance)) return create_instance(effect);
  if (is(kOfxActionDestroyInstance)) return destroy_instance(effect);
  if (is(kOfxActionPurgeCaches)) {
    char err[kMessageSize];
    if (g_python_used) dfk_purge_caches(err, sizeof err);
    return kOfxStatOK;
  }
  Instance *inst = effect != nullptr ? instance_of(effect) : nullptr;
  if (inst == nullptr) return kOfxStatReplyDefault;
  if (is(kOfxImageEffectActionRender)) return render(*inst, in);
  if (is(kOfxImageEffectActionGetFramesNeeded)) return frames_needed(*inst, in, out);
  if (is(kOfxImageEffectActionIsIdentity)) return is_identity(*inst, in, out);
  if (is(kOfxImageEffectActionGetClipPreferences)) return clip_preferences(*inst, out);
  if (is(kOfxImageEffectActionGetTimeDomain)) return time_domain(*inst, out);
  if (is(kOfxActionInstanceChanged)) return instance_changed(*inst, in);
  if (is(kOfxActionSyncPrivateData)) return sync_private_data(*inst);
  return kOfxStatReplyDefault;
}

OfxStatus main_entry(const char *action, const void *handle, OfxPropertySetHandle in, OfxPropertySetHandle out) {
  try {
    if (action == nullptr) return kOfxStatErrBadHandle;
    OfxImageEffectHandle effect = static_cast<OfxImageEffectHandle>(const_cast<void *>(handle));
    return dispatch(action, effect, in, out);
  } catch (const std::exception &e) {
    dfk_log(3, (std::string("exception in ") + action + ": " + e.what()).c_str());
  } catch (...) {
    dfk_log(3, (std::string("unknown exception in ") + action).c_str());
  }
  return kOfxStatFailed;
}

void set_host(OfxHost *host) { suites().host = host; }

OfxPlugin g_plugin = {kOfxImageEffectPluginApi, kOfxImageEffectPluginApiVersion, kPluginIdentifier, kVersionMajor,
                      kVersionMinor,            set_host,                        main_entry};

}  // namespace
}  // namespace deflicker_ofx

// The core's exports (plugin/core_api.h): the loader, Deflicker.ofx, forwards the OFX entry points here.
extern "C" {

DfkCoreExport OfxStatus dfk_core_set_host(const OfxHost *host) {
  deflicker_ofx::suites().host = host;
  return kOfxStatOK;
}

DfkCoreExport int dfk_core_get_number_of_plugins(void) { return 1; }

DfkCoreExport OfxPlugin *dfk_core_get_plugin(int nth) { return nth == 0 ? &deflicker_ofx::g_plugin : nullptr; }

}  // extern "C"
