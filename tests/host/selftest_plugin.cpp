// selftest_plugin.cpp: a tiny OFX plugin that checks the test host itself (no Python, no model).
//
// "org.deflicker.hosttest.Gain": Output(t) = gain * Source(t) (RGB; alpha copied). It also reads
// Source(t-1) (temporal access), reports progress, polls abort, answers bad input (missing frame,
// wrong size, NaN) with a message and kOfxStatFailed, and has one param of each value type plus a
// "press" button that writes "pressed N" into the string param "status".
#include <cmath>
#include <cstring>
#include <string>

#include "ofx/ofx_api.h"

namespace {

OfxHost *gHost = nullptr;
const OfxPropertySuiteV1 *gProps = nullptr;
const OfxImageEffectSuiteV1 *gEffect = nullptr;
const OfxParameterSuiteV1 *gParams = nullptr;
const OfxMessageSuiteV2 *gMessage = nullptr;
const OfxProgressSuiteV1 *gProgress = nullptr;
int gPresses = 0;

OfxStatus fail(OfxImageEffectHandle fx, const std::string &why) {
  gMessage->setPersistentMessage(fx, kOfxMessageError, "", "%s", why.c_str());
  return kOfxStatFailed;
}

OfxStatus describe(OfxImageEffectHandle fx) {
  OfxPropertySetHandle p;
  gEffect->getPropertySet(fx, &p);
  gProps->propSetString(p, kOfxPropLabel, 0, "Host self-test gain");
  const char *contexts[] = {kOfxImageEffectContextFilter, kOfxImageEffectContextGeneral};
  gProps->propSetStringN(p, kOfxImageEffectPropSupportedContexts, 2, contexts);
  const char *depths[] = {kOfxBitDepthFloat, kOfxBitDepthShort, kOfxBitDepthByte};
  gProps->propSetStringN(p, kOfxImageEffectPropSupportedPixelDepths, 3, depths);
  gProps->propSetInt(p, kOfxImageEffectPropTemporalClipAccess, 0, 1);
  gProps->propSetInt(p, kOfxImageEffectPropSupportsTiles, 0, 0);
  gProps->propSetString(p, kOfxImageEffectPluginRenderThreadSafety, 0, kOfxImageEffectRenderFullySafe);
  // a deliberately unknown property: the host must answer kOfxStatErrUnknown
  return gProps->propSetInt(p, "OfxHostSelfTestNoSuchProp", 0, 1) == kOfxStatErrUnknown ? kOfxStatOK : kOfxStatFailed;
}

OfxStatus describeInContext(OfxImageEffectHandle fx) {
  OfxPropertySetHandle p;
  gEffect->clipDefine(fx, kOfxImageEffectSimpleSourceClipName, &p);
  gProps->propSetString(p, kOfxImageEffectPropSupportedComponents, 0, kOfxImageComponentRGBA);
  gProps->propSetInt(p, kOfxImageEffectPropTemporalClipAccess, 0, 1);
  gEffect->clipDefine(fx, kOfxImageEffectOutputClipName, &p);
  gProps->propSetString(p, kOfxImageEffectPropSupportedComponents, 0, kOfxImageComponentRGBA);
  OfxParamSetHandle ps;
  gEffect->getParamSet(fx, &ps);
  gParams->paramDefine(ps, kOfxParamTypeDouble, "gain", &p);
  gProps->propSetDouble(p, kOfxParamPropDefault, 0, 1.0);
  gProps->propSetDouble(p, kOfxParamPropMin, 0, 0.0);
  gProps->propSetDouble(p, kOfxParamPropMax, 0, 4.0);
  gParams->paramDefine(ps, kOfxParamTypeInteger, "count", &p);
  gProps->propSetInt(p, kOfxParamPropDefault, 0, 3);
  gParams->paramDefine(ps, kOfxParamTypeBoolean, "flag", &p);
  gProps->propSetInt(p, kOfxParamPropDefault, 0, 1);
  gParams->paramDefine(ps, kOfxParamTypeChoice, "mode", &p);
  gProps->propSetString(p, kOfxParamPropChoiceOption, 0, "first");
  gProps->propSetString(p, kOfxParamPropChoiceOption, 1, "second");
  gParams->paramDefine(ps, kOfxParamTypeString, "status", &p);
  gProps->propSetString(p, kOfxParamPropDefault, 0, "idle");
  gParams->paramDefine(ps, kOfxParamTypePushButton, "press", &p);
  // bad index on a 1-D property must be refused
  return gProps->propSetString(p, kOfxPropLabel, 5, "x") == kOfxStatErrBadIndex ? kOfxStatOK : kOfxStatFailed;
}

OfxParamHandle param(OfxImageEffectHandle fx, const char *name) {
  OfxParamSetHandle ps;
  OfxParamHandle h = nullptr;
  gEffect->getParamSet(fx, &ps);
  gParams->paramGetHandle(ps, name, &h, nullptr);
  return h;
}

OfxStatus instanceChanged(OfxImageEffectHandle fx, OfxPropertySetHandle in) {
  char *type = nullptr, *name = nullptr;
  gProps->propGetString(in, kOfxPropType, 0, &type);
  gProps->propGetString(in, kOfxPropName, 0, &name);
  if (std::strcmp(type, kOfxTypeParameter) != 0 || std::strcmp(name, "press") != 0) return kOfxStatReplyDefault;
  std::string text = "pressed " + std::to_string(++gPresses);
  return gParams->paramSetValue(param(fx, "status"), text.c_str());
}

struct Pixels {
  void *data = nullptr;
  int bounds[4] = {0, 0, 0, 0}, rowBytes = 0;
  std::string depth;
};

OfxStatus fetch(OfxImageClipHandle clip, OfxTime t, OfxPropertySetHandle *img, Pixels *px) {
  OfxStatus st = gEffect->clipGetImage(clip, t, nullptr, img);
  if (st != kOfxStatOK) return st;
  char *depth = nullptr;
  gProps->propGetPointer(*img, kOfxImagePropData, 0, &px->data);
  gProps->propGetIntN(*img, kOfxImagePropBounds, 4, px->bounds);
  gProps->propGetInt(*img, kOfxImagePropRowBytes, 0, &px->rowBytes);
  gProps->propGetString(*img, kOfxImageEffectPropPixelDepth, 0, &depth);
  px->depth = depth;
  return kOfxStatOK;
}

float load(const Pixels &p, int x, int y, int c) {
  const char *row = static_cast<const char *>(p.data) + static_cast<long>(y) * p.rowBytes;
  if (p.depth == kOfxBitDepthFloat) return reinterpret_cast<const float *>(row)[x * 4 + c];
  if (p.depth == kOfxBitDepthShort) return reinterpret_cast<const unsigned short *>(row)[x * 4 + c] / 65535.0f;
  return reinterpret_cast<const unsigned char *>(row)[x * 4 + c] / 255.0f;
}

void store(const Pixels &p, int x, int y, int c, float v) {
  char *row = static_cast<char *>(p.data) + static_cast<long>(y) * p.rowBytes;
  v = std::fmin(std::fmax(v, 0.0f), 1.0f);
  if (p.depth == kOfxBitDepthFloat) reinterpret_cast<float *>(row)[x * 4 + c] = v;
  else if (p.depth == kOfxBitDepthShort) reinterpret_cast<unsigned short *>(row)[x * 4 + c] = (unsigned short)std::lrint(v * 65535.0f);
  else reinterpret_cast<unsigned char *>(row)[x * 4 + c] = (unsigned char)std::lrint(v * 255.0f);
}

OfxStatus render(OfxImageEffectHandle fx, OfxPropertySetHandle in) {
  OfxTime t = 0;
  gProps->propGetDouble(in, kOfxPropTime, 0, &t);
  double gain = 1.0, range[2] = {0, 0};
  int count = 0, flag = 0, mode = 0;
  const char *status = nullptr;
  if (gParams->paramGetValue(param(fx, "gain"), &gain) || gParams->paramGetValue(param(fx, "count"), &count) ||
      gParams->paramGetValue(param(fx, "flag"), &flag) || gParams->paramGetValue(param(fx, "mode"), &mode) ||
      gParams->paramGetValue(param(fx, "status"), &status) || !status)
    return fail(fx, "paramGetValue failed");
  OfxImageClipHandle src, dst;
  OfxPropertySetHandle srcProps;
  gEffect->clipGetHandle(fx, kOfxImageEffectSimpleSourceClipName, &src, &srcProps);
  gEffect->clipGetHandle(fx, kOfxImageEffectOutputClipName, &dst, nullptr);
  gProps->propGetDoubleN(srcProps, kOfxImageEffectPropFrameRange, 2, range);
  gProgress->progressStart(fx, "self-test");
  OfxPropertySetHandle a = nullptr, prev = nullptr, b = nullptr;
  Pixels s, p, o;
  OfxStatus st = kOfxStatOK;
  if (fetch(src, t, &a, &s) != kOfxStatOK) st = fail(fx, "no source image at " + std::to_string(t));
  else if (t > range[0] && fetch(src, t - 1, &prev, &p) != kOfxStatOK) st = fail(fx, "no previous source image");
  else if (fetch(dst, t, &b, &o) != kOfxStatOK) st = fail(fx, "no output image");
  else if (std::memcmp(s.bounds, o.bounds, sizeof s.bounds) != 0) st = fail(fx, "source frame has the wrong size");
  else if (gProgress->progressUpdate(fx, 0.5) != kOfxStatOK || gEffect->abort(fx)) st = fail(fx, "cancelled");
  for (int y = 0; st == kOfxStatOK && y < o.bounds[3]; ++y)
    for (int x = 0; st == kOfxStatOK && x < o.bounds[2]; ++x)
      for (int c = 0; st == kOfxStatOK && c < 4; ++c) {
        float v = load(s, x, y, c);
        if (std::isnan(v)) st = fail(fx, "NaN pixels in the source");
        else store(o, x, y, c, c == 3 ? v : float(v * gain));
      }
  for (OfxPropertySetHandle img : {a, prev, b})
    if (img) gEffect->clipReleaseImage(img);
  gProgress->progressEnd(fx);
  return st;
}

OfxStatus mainEntry(const char *action, const void *handle, OfxPropertySetHandle in, OfxPropertySetHandle) {
  auto fx = static_cast<OfxImageEffectHandle>(const_cast<void *>(handle));
  std::string a = action;
  if (a == kOfxActionLoad) {
    gProps = static_cast<const OfxPropertySuiteV1 *>(gHost->fetchSuite(gHost->host, kOfxPropertySuite, 1));
    gEffect = static_cast<const OfxImageEffectSuiteV1 *>(gHost->fetchSuite(gHost->host, kOfxImageEffectSuite, 1));
    gParams = static_cast<const OfxParameterSuiteV1 *>(gHost->fetchSuite(gHost->host, kOfxParameterSuite, 1));
    gMessage = static_cast<const OfxMessageSuiteV2 *>(gHost->fetchSuite(gHost->host, kOfxMessageSuite, 2));
    gProgress = static_cast<const OfxProgressSuiteV1 *>(gHost->fetchSuite(gHost->host, kOfxProgressSuite, 1));
    return gProps && gEffect && gParams && gMessage && gProgress ? kOfxStatOK : kOfxStatErrMissingHostFeature;
  }
  if (a == kOfxActionDescribe) return describe(fx);
  if (a == kOfxImageEffectActionDescribeInContext) return describeInContext(fx);
  if (a == kOfxActionInstanceChanged) return instanceChanged(fx, in);
  if (a == kOfxImageEffectActionRender) return render(fx, in);
  return kOfxStatReplyDefault;
}

void setHost(OfxHost *host) { gHost = host; }

OfxPlugin gPlugin = {kOfxImageEffectPluginApi, kOfxImageEffectPluginApiVersion, "org.deflicker.hosttest.Gain", 1, 0,
                     setHost, mainEntry};

}  // namespace

extern "C" {
OfxExport int OfxGetNumberOfPlugins(void) { return 1; }
OfxExport OfxPlugin *OfxGetPlugin(int nth) { return nth == 0 ? &gPlugin : nullptr; }
}
