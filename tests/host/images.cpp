// images.cpp: pixel layout, depth conversion and the lent-image registry.
#include "images.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "common.h"

Depth depthFromName(const std::string &name) {
  if (name == "float" || name == kOfxBitDepthFloat) return Depth::Float;
  if (name == "short" || name == kOfxBitDepthShort) return Depth::Short;
  if (name == "byte" || name == kOfxBitDepthByte) return Depth::Byte;
  throw HostError("unsupported pixel depth '" + name + "' (float, short or byte)", 2);
}

const char *depthOfxName(Depth depth) {
  switch (depth) {
    case Depth::Byte: return kOfxBitDepthByte;
    case Depth::Short: return kOfxBitDepthShort;
    case Depth::Float: return kOfxBitDepthFloat;
  }
  return kOfxBitDepthNone;
}

float toHalfPrecision(float v) {
  if (v == 0.0f || !std::isfinite(v)) return v;
  int exponent = 0;
  std::frexp(v, &exponent);                          // |v| = m * 2^exponent, m in [0.5, 1)
  int quantum = std::max(exponent - 11, -24);        // 11 significant bits; subnormal halves step by 2^-24
  return std::ldexp(std::nearbyint(std::ldexp(v, -quantum)), quantum);
}

Image::Image(int w, int h, int c, Depth d, bool td, unsigned char *borrowed)
    : width(w), height(h), components(c), depth(d), topDown(td) {
  size_t bytes = pixelBytes() * static_cast<size_t>(w) * static_cast<size_t>(h);
  if (!borrowed) owned.assign(bytes, 0);
  base = borrowed ? borrowed : owned.data();
  long stride = static_cast<long>(pixelBytes()) * w;
  // OFX: data points at the lower-left pixel; rowBytes steps one row UP.
  unsigned char *data = topDown ? base + static_cast<size_t>(h - 1) * stride : base;
  props.declareString(kOfxPropType, {kOfxTypeImage});
  props.declareString(kOfxImageEffectPropPixelDepth, {depthOfxName(d)});
  props.declareString(kOfxImageEffectPropComponents, {c == 4 ? kOfxImageComponentRGBA : kOfxImageComponentRGB});
  props.declareString(kOfxImageEffectPropPreMultiplication, {c == 4 ? kOfxImageUnPreMultiplied : kOfxImageOpaque});
  props.declareDouble(kOfxImageEffectPropRenderScale, {1.0, 1.0});
  props.declareDouble(kOfxImagePropPixelAspectRatio, {1.0});
  props.declarePointer(kOfxImagePropData, data);
  props.declareInt(kOfxImagePropBounds, {0, 0, w, h});
  props.declareInt(kOfxImagePropRegionOfDefinition, {0, 0, w, h});
  props.declareInt(kOfxImagePropRowBytes, {static_cast<int>(topDown ? -stride : stride)});
  props.declareString(kOfxImagePropField, {kOfxImageFieldNone});
  props.declareString(kOfxImagePropUniqueIdentifier, {std::to_string(reinterpret_cast<uintptr_t>(base))});
}

size_t Image::pixelBytes() const { return bytesFor(1, 1, components, depth); }

size_t Image::bytesFor(int w, int h, int c, Depth d) {
  size_t channel = d == Depth::Float ? 4 : d == Depth::Short ? 2 : 1;
  return channel * static_cast<size_t>(c) * static_cast<size_t>(w) * static_cast<size_t>(h);
}

unsigned char *Image::pixel(int x, int yTop) const {
  int memoryRow = topDown ? yTop : height - 1 - yTop;
  return base + (static_cast<size_t>(memoryRow) * width + x) * pixelBytes();
}

namespace {

/** v / 65535.0f for every 16-bit v (fills run per fetch; 1080p frames must be cheap to serve). */
const float *unitTable() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (size_t v = 0; v < t.size(); ++v) t[v] = static_cast<float>(v) / 65535.0f;
    return t;
  }();
  return table.data();
}

/** convert(v, a): channel value v weighted by alpha a (65535 = 1: unweighted), both 16-bit. */
template <class T, class Convert>
void fillRows(Image &image, const uint16_t *rgba16, bool premultiply, Convert convert) {
  for (int y = 0; y < image.height; ++y) {
    const uint16_t *src = rgba16 + static_cast<size_t>(y) * image.width * 4;
    T *dst = reinterpret_cast<T *>(image.pixel(0, y));
    for (int x = 0; x < image.width; ++x, src += 4, dst += image.components)
      for (int c = 0; c < image.components; ++c) dst[c] = convert(src[c], premultiply && c < 3 ? src[3] : uint16_t{65535});
  }
}

}  // namespace

void Image::fill(const uint16_t *rgba16, bool premultiply, bool halfFloat) {
  premultiply = premultiply && components == 4;
  // Premultiplied at the image's own depth, as a host computes it: float colour * float alpha,
  // integers rounded. An unweighted value (a = 65535) converts exactly as without premultiplying.
  if (depth == Depth::Float) {
    const float *unit = unitTable();
    fillRows<float>(*this, rgba16, premultiply, [unit, halfFloat](uint16_t v, uint16_t a) {
      float x = unit[v] * unit[a];
      return halfFloat ? toHalfPrecision(x) : x;
    });
  } else if (depth == Depth::Short) {
    fillRows<uint16_t>(*this, rgba16, premultiply, [](uint16_t v, uint16_t a) {
      return a == 65535 ? v : static_cast<uint16_t>(std::lrint(v * (a / 65535.0)));
    });
  } else {
    fillRows<unsigned char>(*this, rgba16, premultiply, [](uint16_t v, uint16_t a) {
      return static_cast<unsigned char>(std::lrint(v * (a / 65535.0) / 257.0));
    });
  }
}

void Image::toFloat(float *rgba) const {
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const unsigned char *src = pixel(x, y);
      float *dst = rgba + (static_cast<size_t>(y) * width + x) * 4;
      dst[3] = 1.0f;
      for (int c = 0; c < components; ++c) {
        if (depth == Depth::Float) dst[c] = reinterpret_cast<const float *>(src)[c];
        else if (depth == Depth::Short) dst[c] = reinterpret_cast<const uint16_t *>(src)[c] / 65535.0f;
        else dst[c] = src[c] / 255.0f;
      }
    }
}

void Image::fillNaN(int x0, int y0, int size) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int y = y0; y < std::min(height, y0 + size); ++y)
    for (int x = x0; x < std::min(width, x0 + size); ++x)
      for (int c = 0; c < 3; ++c) reinterpret_cast<float *>(pixel(x, y))[c] = nan;
}

namespace {
std::mutex registryMutex;
std::unordered_map<OfxPropertySetHandle, std::unique_ptr<Image>> lent;
}  // namespace

OfxPropertySetHandle lendImage(std::unique_ptr<Image> image) {
  OfxPropertySetHandle handle = &image->props;
  std::lock_guard<std::mutex> lock(registryMutex);
  lent[handle] = std::move(image);
  return handle;
}

bool returnImage(OfxPropertySetHandle handle) {
  std::lock_guard<std::mutex> lock(registryMutex);
  return lent.erase(handle) != 0;
}

void checkImagesReleased(const std::string &owner) {
  std::lock_guard<std::mutex> lock(registryMutex);
  for (auto it = lent.begin(); it != lent.end();) {
    if (it->second->owner == owner) {
      emit("violation", {{"what", json("image not released by the end of the action")}, {"action", json(owner)}});
      it = lent.erase(it);
    } else {
      ++it;
    }
  }
}
