// host.cpp: suites, property helpers and RAII holders (see host.h).
#include "host.h"

#include <sstream>

namespace deflicker_ofx {

Suites &suites() {
  static Suites s;
  return s;
}

namespace {

template <class T>
const T *fetch(const char *name, int version) {
  const OfxHost *host = suites().host;
  if (host == nullptr || host->fetchSuite == nullptr) return nullptr;
  return static_cast<const T *>(host->fetchSuite(host->host, name, version));
}

std::string joined(OfxPropertySetHandle props, const char *name) {
  int n = 0;
  if (suites().prop->propGetDimension(props, name, &n) != kOfxStatOK) return "?";
  std::string out;
  for (int i = 0; i < n; ++i) out += (i ? "," : "") + get_string(props, name, i);
  return out;
}

}  // namespace

bool fetch_suites() {
  Suites &s = suites();
  s.prop = fetch<OfxPropertySuiteV1>(kOfxPropertySuite, 1);
  s.effect = fetch<OfxImageEffectSuiteV1>(kOfxImageEffectSuite, 1);
  s.param = fetch<OfxParameterSuiteV1>(kOfxParameterSuite, 1);
  s.memory = fetch<OfxMemorySuiteV1>(kOfxMemorySuite, 1);
  s.thread = fetch<OfxMultiThreadSuiteV1>(kOfxMultiThreadSuite, 1);
  s.message2 = fetch<OfxMessageSuiteV2>(kOfxMessageSuite, 2);
  s.message1 = fetch<OfxMessageSuiteV1>(kOfxMessageSuite, 1);
  s.progress = fetch<OfxProgressSuiteV1>(kOfxProgressSuite, 1);
  s.timeline = fetch<OfxTimeLineSuiteV1>(kOfxTimeLineSuite, 1);
  return s.prop != nullptr && s.effect != nullptr && s.param != nullptr;
}

std::string describe_host() {
  const Suites &s = suites();
  OfxPropertySetHandle h = s.host->host;
  std::ostringstream out;
  out << "host " << get_string(h, kOfxPropName, 0, "?") << " (" << get_string(h, kOfxPropLabel, 0, "?") << ") version "
      << get_int(h, kOfxPropVersion, 0, -1) << '.' << get_int(h, kOfxPropVersion, 1, -1) << '.'
      << get_int(h, kOfxPropVersion, 2, -1) << " api " << get_int(h, kOfxPropAPIVersion, 0, -1) << '.'
      << get_int(h, kOfxPropAPIVersion, 1, -1) << "; temporalClipAccess=" << get_int(h, kOfxImageEffectPropTemporalClipAccess, 0, -1)
      << " tiles=" << get_int(h, kOfxImageEffectPropSupportsTiles, 0, -1)
      << " multiRes=" << get_int(h, kOfxImageEffectPropSupportsMultiResolution, 0, -1)
      << " depths=" << joined(h, kOfxImageEffectPropSupportedPixelDepths)
      << " components=" << joined(h, kOfxImageEffectPropSupportedComponents)
      << " contexts=" << joined(h, kOfxImageEffectPropSupportedContexts)
      << "; suites: memory=" << (s.memory != nullptr) << " multithread=" << (s.thread != nullptr)
      << " messageV1=" << (s.message1 != nullptr) << " messageV2=" << (s.message2 != nullptr)
      << " persistentMessage=" << (s.message2 != nullptr && s.message2->setPersistentMessage != nullptr)
      << " progress=" << (s.progress != nullptr) << " timeline=" << (s.timeline != nullptr);
  return out.str();
}

std::string get_string(OfxPropertySetHandle props, const char *name, int index, const std::string &fallback) {
  char *value = nullptr;
  if (suites().prop->propGetString(props, name, index, &value) != kOfxStatOK || value == nullptr) return fallback;
  return value;
}

int get_int(OfxPropertySetHandle props, const char *name, int index, int fallback) {
  int value = fallback;
  return suites().prop->propGetInt(props, name, index, &value) == kOfxStatOK ? value : fallback;
}

double get_double(OfxPropertySetHandle props, const char *name, int index, double fallback) {
  double value = fallback;
  return suites().prop->propGetDouble(props, name, index, &value) == kOfxStatOK ? value : fallback;
}

std::vector<double> get_doubles(OfxPropertySetHandle props, const char *name) {
  int n = 0;
  if (suites().prop->propGetDimension(props, name, &n) != kOfxStatOK || n <= 0) return {};
  std::vector<double> values(static_cast<size_t>(n));
  if (suites().prop->propGetDoubleN(props, name, n, values.data()) != kOfxStatOK) return {};
  return values;
}

void set_string(OfxPropertySetHandle props, const char *name, const std::string &value, int index) {
  suites().prop->propSetString(props, name, index, value.c_str());
}

void set_int(OfxPropertySetHandle props, const char *name, int value, int index) {
  suites().prop->propSetInt(props, name, index, value);
}

void set_double(OfxPropertySetHandle props, const char *name, double value, int index) {
  suites().prop->propSetDouble(props, name, index, value);
}

void set_strings(OfxPropertySetHandle props, const char *name, const std::vector<const char *> &values) {
  for (size_t i = 0; i < values.size(); ++i) suites().prop->propSetString(props, name, static_cast<int>(i), values[i]);
}

ClipImage::ClipImage(OfxImageClipHandle clip, OfxTime time) {
  if (suites().effect->clipGetImage(clip, time, nullptr, &handle_) != kOfxStatOK) handle_ = nullptr;
}

ClipImage::~ClipImage() {
  if (handle_ != nullptr) suites().effect->clipReleaseImage(handle_);
}

DfkImage ClipImage::view() const { return image_view(handle_); }

DfkImage image_view(OfxPropertySetHandle image) {
  DfkImage v{};
  void *data = nullptr;
  suites().prop->propGetPointer(image, kOfxImagePropData, 0, &data);
  const int x1 = get_int(image, kOfxImagePropBounds, 0), y1 = get_int(image, kOfxImagePropBounds, 1);
  const int x2 = get_int(image, kOfxImagePropBounds, 2), y2 = get_int(image, kOfxImagePropBounds, 3);
  const int row_bytes = get_int(image, kOfxImagePropRowBytes);
  const std::string depth = get_string(image, kOfxImageEffectPropPixelDepth);
  const std::string comps = get_string(image, kOfxImageEffectPropComponents);
  v.width = x2 - x1;
  v.height = y2 - y1;
  v.channels = comps == kOfxImageComponentRGBA ? 4 : comps == kOfxImageComponentRGB ? 3 : 0;
  v.bytes_per_channel = depth == kOfxBitDepthByte ? 1 : depth == kOfxBitDepthShort ? 2 : depth == kOfxBitDepthFloat ? 4 : 0;
  if (data == nullptr || v.width <= 0 || v.height <= 0 || v.channels == 0 || v.bytes_per_channel == 0) return DfkImage{};
  // OFX rows go bottom-up from `data`; the top row is the last one. Present it top-down.
  v.data = static_cast<char *>(data) + static_cast<ptrdiff_t>(v.height - 1) * row_bytes;
  v.row_bytes = -static_cast<ptrdiff_t>(row_bytes);
  return v;
}

ProgressScope::~ProgressScope() {
  if (started_) suites().progress->progressEnd(effect_);
}

bool ProgressScope::update(double fraction) {
  const OfxProgressSuiteV1 *p = suites().progress;
  if (p == nullptr) return true;
  if (!started_) started_ = p->progressStart(effect_, label_.c_str()) == kOfxStatOK;
  return !started_ || p->progressUpdate(effect_, fraction) != kOfxStatReplyNo;
}

EditBlock::EditBlock(OfxParamSetHandle params, const char *name) : params_(params) {
  open_ = suites().param->paramEditBegin(params_, name) == kOfxStatOK;
}

EditBlock::~EditBlock() {
  if (open_) suites().param->paramEditEnd(params_);
}

void post_error(OfxImageEffectHandle effect, const std::string &message, bool may_open_dialog) {
  const Suites &s = suites();
  if (s.message2 != nullptr && s.message2->setPersistentMessage != nullptr) {
    s.message2->setPersistentMessage(effect, kOfxMessageError, "", "%s", message.c_str());
  } else if (s.message1 != nullptr && may_open_dialog) {
    s.message1->message(effect, kOfxMessageError, "", "%s", message.c_str());
  }
}

void clear_error(OfxImageEffectHandle effect) {
  const Suites &s = suites();
  if (s.message2 != nullptr && s.message2->clearPersistentMessage != nullptr) s.message2->clearPersistentMessage(effect);
}

}  // namespace deflicker_ofx
