// host.cpp: host properties, fetchSuite and the image effect suite.
#include "host.h"

#include <chrono>
#include <cmath>
#include <ctime>

#include "common.h"
#include "pixels.h"
#include "suites.h"

namespace {

Host theHost;

// ------------------------------------------------------------------ image effect suite

bool takeInjection(int frame, const char *kind) {
  std::lock_guard<std::mutex> lock(theHost.injectionMutex);
  for (auto &inj : theHost.options.injections)
    if (!inj.spent && inj.frame == frame && inj.kind == kind) {
      inj.spent = true;
      emit("injected", {{"kind", json(kind)}, {"frame", json(frame)}});
      return true;
    }
  return false;
}

std::unique_ptr<Image> sourceImage(const Clip &clip, int frame) {
  const Video &v = theHost.video;
  int comps = clip.props.getString(kOfxImageEffectPropComponents) == kOfxImageComponentRGB ? 3 : 4;
  Depth depth = depthFromName(clip.props.getString(kOfxImageEffectPropPixelDepth));
  bool topDown = theHost.options.negativeRowBytes;
  bool premultiplied = clip.props.getString(kOfxImageEffectPropPreMultiplication) == kOfxImagePreMultiplied;
  bool wrongSize = takeInjection(frame, "wrong-size");
  bool nan = !wrongSize && depth == Depth::Float && takeInjection(frame, "nan");
  if (!wrongSize && !nan) {
    PixelBuffer pixels = frameCache().get(frame, comps, depth);
    if (!pixels) {
      pixels = takePixelBuffer(Image::bytesFor(v.width, v.height, comps, depth));
      Image(v.width, v.height, comps, depth, topDown, pixels->data()).fill(v.frame(frame), premultiplied, theHost.options.halfFloat);
      frameCache().put(frame, comps, depth, pixels);
    }
    auto image = std::make_unique<Image>(v.width, v.height, comps, depth, topDown, pixels->data());
    image->keep = pixels;  // source images are the plugin's to read, not to write
    return image;
  }
  int w = wrongSize ? v.width / 2 : v.width, h = wrongSize ? v.height / 2 : v.height;
  auto image = std::make_unique<Image>(w, h, comps, depth, topDown);
  std::vector<uint16_t> crop;
  const uint16_t *pixels = v.frame(frame);
  if (wrongSize) {
    for (int y = 0; y < h; ++y) crop.insert(crop.end(), pixels + size_t(y) * v.width * 4, pixels + (size_t(y) * v.width + w) * 4);
    pixels = crop.data();
  }
  image->fill(pixels, premultiplied, theHost.options.halfFloat);
  if (nan) image->fillNaN(w / 2 - 4, h / 2 - 4, 8);
  return image;
}

OfxStatus clipGetImage(OfxImageClipHandle clip, OfxTime time, const OfxRectD *, OfxPropertySetHandle *handle) {
  if (!clip || !handle || !isLiveEffect(clip->effect)) return kOfxStatErrBadHandle;
  Effect *fx = clip->effect;
  const std::string &action = currentAction();
  if (fx->descriptor) return kOfxStatErrBadHandle;
  if (action != kOfxImageEffectActionRender && action != kOfxActionInstanceChanged &&
      action != kOfxActionBeginInstanceChanged && action != kOfxActionEndInstanceChanged)
    violation("clipGetImage(" + clip->name + ") outside Render/InstanceChanged");
  RenderContext *rc = renderContext();
  std::unique_ptr<Image> image;
  if (clip->name == kOfxImageEffectOutputClipName) {
    if (!rc || rc->effect != fx || time != rc->time) return kOfxStatFailed;
    const Image &out = *rc->output;
    image = std::make_unique<Image>(out.width, out.height, out.components, out.depth, out.topDown, out.base);
  } else {
    // Charge this fetch to the Render it serves: wall time, and the process's CPU time meanwhile
    // (with one render thread: what serving the image cost, idle-spinning worker threads included).
    struct Account {
      RenderContext *rc;
      std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
      long long cpuStart = cpuNanos();
      ~Account() {
        if (!rc) return;
        ++rc->sourceFetches;
        rc->fetchNanos += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
        rc->fetchCpuNanos += cpuNanos() - cpuStart;
      }
      static long long cpuNanos() {
        timespec ts{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
      }
    } account{rc};
    double rel = time - theHost.options.firstFrame;
    long frame = std::lround(rel);
    if (std::fabs(rel - double(frame)) > 1e-6 || frame < 0 || frame >= theHost.video.frames) return kOfxStatFailed;
    bool temporal = fx->props.getInt(kOfxImageEffectPropTemporalClipAccess) &&
                    clip->props.getInt(kOfxImageEffectPropTemporalClipAccess);
    if (rc && time != rc->time && !temporal)
      violation("clipGetImage at another time without TemporalClipAccess on the effect and the clip");
    if (takeInjection(int(frame), "missing-frame")) return kOfxStatFailed;
    image = sourceImage(*clip, int(frame));
  }
  image->props.declareString(kOfxImageEffectPropPreMultiplication, {clip->props.getString(kOfxImageEffectPropPreMultiplication)});
  image->owner = currentActionToken();
  *handle = lendImage(std::move(image));
  return kOfxStatOK;
}

}  // namespace

struct OfxImageMemoryStruct {
  std::vector<unsigned char> bytes;
};

namespace {

const OfxImageEffectSuiteV1 kImageEffectSuite = {
    [](OfxImageEffectHandle e, OfxPropertySetHandle *p) {
      if (!isLiveEffect(e) || !p) return kOfxStatErrBadHandle;
      *p = &e->props;
      return kOfxStatOK;
    },
    [](OfxImageEffectHandle e, OfxParamSetHandle *p) {
      if (!isLiveEffect(e) || !p) return kOfxStatErrBadHandle;
      *p = &e->params;
      return kOfxStatOK;
    },
    [](OfxImageEffectHandle e, const char *name, OfxPropertySetHandle *p) {
      if (!isLiveEffect(e) || !name) return kOfxStatErrBadHandle;
      if (!e->descriptor) {
        violation(std::string("clipDefine(") + name + ") on an instance");
        return kOfxStatErrUnsupported;
      }
      if (e->clip(name)) return kOfxStatErrExists;
      Clip *c = e->defineClip(name);
      if (p) *p = &c->props;
      return kOfxStatOK;
    },
    [](OfxImageEffectHandle e, const char *name, OfxImageClipHandle *clip, OfxPropertySetHandle *p) {
      if (!isLiveEffect(e) || !name) return kOfxStatErrBadHandle;
      Clip *c = e->clip(name);
      if (!c) return kOfxStatErrUnknown;
      if (clip) *clip = c;
      if (p) *p = &c->props;
      return kOfxStatOK;
    },
    [](OfxImageClipHandle clip, OfxPropertySetHandle *p) {
      if (!clip || !p) return kOfxStatErrBadHandle;
      *p = &clip->props;
      return kOfxStatOK;
    },
    clipGetImage,
    [](OfxPropertySetHandle image) { return returnImage(image) ? kOfxStatOK : kOfxStatErrBadHandle; },
    [](OfxImageClipHandle clip, OfxTime, OfxRectD *rod) {
      if (!clip || !rod) return kOfxStatErrBadHandle;
      const double pad = theHost.options.rodPad;
      *rod = {-pad, -pad, double(theHost.video.width) + pad, double(theHost.video.height) + pad};
      return kOfxStatOK;
    },
    [](OfxImageEffectHandle) { return theHost.abort.trigger() ? 1 : 0; },
    [](OfxImageEffectHandle, size_t n, OfxImageMemoryHandle *m) {
      if (!m) return kOfxStatErrBadHandle;
      *m = new OfxImageMemoryStruct{std::vector<unsigned char>(n)};
      return kOfxStatOK;
    },
    [](OfxImageMemoryHandle m) {
      delete m;
      return kOfxStatOK;
    },
    [](OfxImageMemoryHandle m, void **ptr) {
      if (!m || !ptr) return kOfxStatErrBadHandle;
      *ptr = m->bytes.data();
      return kOfxStatOK;
    },
    [](OfxImageMemoryHandle m) { return m ? kOfxStatOK : kOfxStatErrBadHandle; },
};

const void *fetchSuite(OfxPropertySetHandle, const char *name, int version) {
  std::string n = name ? name : "";
  const void *suite = nullptr;
  if (n == kOfxPropertySuite && version == 1) suite = propertySuite();
  else if (n == kOfxParameterSuite && version == 1) suite = parameterSuite();
  else if (n == kOfxImageEffectSuite && version == 1) suite = &kImageEffectSuite;
  else if (n == kOfxMemorySuite && version == 1) suite = memorySuite();
  else if (n == kOfxMultiThreadSuite && version == 1) suite = multiThreadSuite();
  else if (n == kOfxMessageSuite && (version == 1 || (version == 2 && !theHost.options.noPersistentMessages)))
    suite = messageSuite();  // V2 extends V1
  else if (n == kOfxProgressSuite && version == 1) suite = progressSuiteV1();
  else if (n == kOfxProgressSuite && version == 2) suite = progressSuiteV2();
  else if (n == kOfxTimeLineSuite && version == 1) suite = timeLineSuite();
  emit("fetch-suite", {{"name", json(n)}, {"version", json(version)}, {"found", json(suite ? 1 : 0)}});
  return suite;
}

void declareHostProps(PropertySet &p, const HostOptions &o) {
  bool nuke = o.hostName.find("nuke") != std::string::npos;
  p.declareString(kOfxPropType, {kOfxTypeImageEffectHost});
  p.declareString(kOfxPropName, {o.hostName});
  p.declareString(kOfxPropLabel, {nuke ? "Nuke" : "DaVinci Resolve"});
  p.declareInt(kOfxPropAPIVersion, {1, 4});
  p.declareInt(kOfxPropVersion, {1, 0, 0});
  p.declareString(kOfxPropVersionLabel, {"ofxhost 1.0"});
  p.declarePointer(kOfxPropHostOSHandle);
  p.declareInt(kOfxImageEffectHostPropIsBackground, {1});
  p.declareInt(kOfxImageEffectPropSupportsOverlays, {0});
  p.declareInt(kOfxImageEffectPropSupportsMultiResolution, {0});
  p.declareInt(kOfxImageEffectPropSupportsTiles, {0});
  p.declareInt(kOfxImageEffectPropTemporalClipAccess, {1});
  p.declareString(kOfxImageEffectPropSupportedComponents, {kOfxImageComponentRGBA, kOfxImageComponentRGB});
  p.declareString(kOfxImageEffectPropSupportedContexts, {kOfxImageEffectContextFilter, kOfxImageEffectContextGeneral});
  p.declareString(kOfxImageEffectPropSupportedPixelDepths, theHost.supportedDepths);
  p.declareInt(kOfxImageEffectPropSupportsMultipleClipDepths, {0});
  p.declareInt(kOfxImageEffectPropSupportsMultipleClipPARs, {0});
  p.declareInt(kOfxImageEffectPropSetableFrameRate, {0});
  p.declareInt(kOfxImageEffectPropSetableFielding, {0});
  p.declareString(kOfxImageEffectHostPropNativeOrigin, {kOfxHostNativeOriginBottomLeft});
  p.declareString(kOfxImageEffectPropOpenGLRenderSupported, {"false"});
  p.declareInt(kOfxParamHostPropSupportsCustomInteract, {0});
  p.declareInt(kOfxParamHostPropSupportsCustomAnimation, {0});
  p.declareInt(kOfxParamHostPropSupportsStringAnimation, {0});
  p.declareInt(kOfxParamHostPropSupportsChoiceAnimation, {0});
  p.declareInt(kOfxParamHostPropSupportsBooleanAnimation, {1});
  p.declareInt(kOfxParamHostPropMaxParameters, {-1});
  p.declareInt(kOfxParamHostPropMaxPages, {0});
  p.declareInt(kOfxParamHostPropPageRowColumnCount, {0, 0});
  if (nuke) p.declareInt(kOfxImageEffectInstancePropSequentialRender, {2});  // Resolve lacks it
}

}  // namespace

Host &host() { return theHost; }

void initHost(const HostOptions &options, Video video) {
  theHost.options = options;
  theHost.video = std::move(video);
  bool nuke = options.hostName.find("nuke") != std::string::npos;
  theHost.supportedDepths = {kOfxBitDepthFloat};  // Nuke: float only
  if (!nuke) theHost.supportedDepths = {kOfxBitDepthFloat, kOfxBitDepthShort, kOfxBitDepthByte};
  else if (options.depth != Depth::Float) theHost.supportedDepths.push_back(depthOfxName(options.depth));
  declareHostProps(theHost.props, options);
  theHost.ofx.host = &theHost.props;
  theHost.ofx.fetchSuite = fetchSuite;
}
