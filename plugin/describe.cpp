// describe.cpp: Describe and DescribeInContext, from the identity and the param table of params.h
// (generated from deflicker.server.plugin_spec).
#include "describe.h"

#include "host.h"
#include "params.h"

namespace deflicker_ofx {
namespace {

void define_clip(OfxImageEffectHandle effect, const char *name, bool temporal) {
  OfxPropertySetHandle props = nullptr;
  suites().effect->clipDefine(effect, name, &props);
  set_strings(props, kOfxImageEffectPropSupportedComponents, {kOfxImageComponentRGBA, kOfxImageComponentRGB});
  set_int(props, kOfxImageEffectPropSupportsTiles, 0);
  if (temporal) set_int(props, kOfxImageEffectPropTemporalClipAccess, 1);
}

void define_param(OfxParamSetHandle params, const ParamSpec &p) {
  static const char *const types[] = {kOfxParamTypeDouble, kOfxParamTypeInteger, kOfxParamTypeBoolean, kOfxParamTypeChoice,
                                      kOfxParamTypePushButton, kOfxParamTypeString, kOfxParamTypeString};
  OfxPropertySetHandle props = nullptr;
  suites().param->paramDefine(params, types[static_cast<int>(p.kind)], p.name, &props);
  set_string(props, kOfxPropLabel, p.label);
  set_string(props, kOfxParamPropHint, p.hint);
  set_string(props, kOfxParamPropScriptName, p.name);
  switch (p.kind) {
    case ParamKind::Double:
      set_double(props, kOfxParamPropDefault, p.def);
      set_double(props, kOfxParamPropMin, p.min);
      set_double(props, kOfxParamPropMax, p.max);
      set_double(props, kOfxParamPropDisplayMin, p.display_min);
      set_double(props, kOfxParamPropDisplayMax, p.display_max);
      set_string(props, kOfxParamPropDoubleType, kOfxParamDoubleTypePlain);
      return;
    case ParamKind::Int:
      set_int(props, kOfxParamPropDefault, static_cast<int>(p.def));
      set_int(props, kOfxParamPropMin, static_cast<int>(p.min));
      set_int(props, kOfxParamPropMax, static_cast<int>(p.max));
      set_int(props, kOfxParamPropDisplayMin, static_cast<int>(p.display_min));
      set_int(props, kOfxParamPropDisplayMax, static_cast<int>(p.display_max));
      set_int(props, kOfxParamPropAnimates, 0);  // analysis setting: one value per clip
      return;
    case ParamKind::Choice:
      for (int i = 0; i <= static_cast<int>(p.max); ++i)
        set_string(props, kOfxParamPropChoiceOption, option(p.options, i), i);
      set_int(props, kOfxParamPropDefault, static_cast<int>(p.def));
      set_int(props, kOfxParamPropAnimates, 0);
      return;
    case ParamKind::Bool:
      set_int(props, kOfxParamPropDefault, static_cast<int>(p.def));
      set_int(props, kOfxParamPropAnimates, 0);  // Resolve animates booleans by default
      return;
    case ParamKind::PushButton:
      return;
    case ParamKind::Label:
      set_string(props, kOfxParamPropStringMode, kOfxParamStringIsLabel);
      set_string(props, kOfxParamPropDefault, "not analysed");
      set_int(props, kOfxParamPropAnimates, 0);
      set_int(props, kOfxParamPropEvaluateOnChange, 0);
      set_int(props, kOfxParamPropPersistant, 0);
      return;
    case ParamKind::Hidden:
      set_string(props, kOfxParamPropDefault, "");
      set_int(props, kOfxParamPropAnimates, 0);
      set_int(props, kOfxParamPropEvaluateOnChange, 0);
      set_int(props, kOfxParamPropPersistant, 1);
      set_int(props, kOfxParamPropSecret, 1);
      return;
  }
}

/** Hand the host's OfxPluginPropFilePath (the bundle, so its Python) to the bridge before Python
 * starts. Read in both describe actions: some hosts fill it only on the context descriptor. */
void note_bundle_path(OfxPropertySetHandle props, const char *action) {
  const std::string bundle = get_string(props, kOfxPluginPropFilePath);
  if (!bundle.empty()) dfk_set_bundle_path(bundle.c_str());
  else dfk_log(1, (std::string("no OfxPluginPropFilePath in ") + action).c_str());
}

}  // namespace

OfxStatus describe(OfxImageEffectHandle effect) {
  OfxPropertySetHandle props = nullptr;
  suites().effect->getPropertySet(effect, &props);
  note_bundle_path(props, kOfxActionDescribe);
  set_string(props, kOfxPropLabel, kPluginLabel);
  set_string(props, kOfxImageEffectPluginPropGrouping, kPluginGrouping);
  set_string(props, kOfxPropPluginDescription, kPluginDescription);
  set_strings(props, kOfxImageEffectPropSupportedContexts, {kOfxImageEffectContextFilter, kOfxImageEffectContextGeneral});
  set_strings(props, kOfxImageEffectPropSupportedPixelDepths, {kOfxBitDepthFloat, kOfxBitDepthShort, kOfxBitDepthByte});
  set_int(props, kOfxImageEffectPropSupportsTiles, 0);
  set_int(props, kOfxImageEffectPropTemporalClipAccess, 1);
  set_int(props, kOfxImageEffectPropSupportsMultiResolution, 0);
  set_int(props, kOfxImageEffectPropSupportsMultipleClipDepths, 0);
  set_int(props, kOfxImageEffectPluginPropSingleInstance, 0);
  set_int(props, kOfxImageEffectPluginPropHostFrameThreading, 0);
  set_string(props, kOfxImageEffectPluginRenderThreadSafety, kOfxImageEffectRenderFullySafe);  // Python side is locked
  return kOfxStatOK;
}

OfxStatus describe_in_context(OfxImageEffectHandle effect) {
  OfxPropertySetHandle props = nullptr;
  suites().effect->getPropertySet(effect, &props);
  note_bundle_path(props, kOfxImageEffectActionDescribeInContext);
  define_clip(effect, kOfxImageEffectSimpleSourceClipName, true);
  define_clip(effect, kOfxImageEffectOutputClipName, false);
  OfxParamSetHandle params = nullptr;
  suites().effect->getParamSet(effect, &params);
  for (const ParamSpec &p : kParams) define_param(params, p);
  return kOfxStatOK;
}

}  // namespace deflicker_ofx
