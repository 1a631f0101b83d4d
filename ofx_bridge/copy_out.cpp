// copy_out.cpp: float32 frame -> host output image (see copy_out.h).
#include "copy_out.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <type_traits>

namespace dfk {
namespace {

float clamp01(float v) { return v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f; }  // NaN -> 0

template <class T>
void store_rows(const float *src, int src_channels, const DfkImage &dst) {
  const float scale = sizeof(T) == 1 ? 255.0f : 65535.0f;
  for (int y = 0; y < dst.height; ++y) {
    T *row = reinterpret_cast<T *>(static_cast<char *>(dst.data) + static_cast<ptrdiff_t>(y) * dst.row_bytes);
    const float *in = src + static_cast<ptrdiff_t>(y) * dst.width * src_channels;
    if constexpr (std::is_same_v<T, float>) {
      if (src_channels == dst.channels) {  // same layout: one block per row
        std::memcpy(row, in, sizeof(float) * static_cast<size_t>(dst.width) * dst.channels);
        continue;
      }
    }
    for (int x = 0; x < dst.width; ++x, in += src_channels, row += dst.channels) {
      for (int c = 0; c < dst.channels; ++c) {
        const float v = c < src_channels ? in[c] : (c == 3 ? 1.0f : in[src_channels - 1]);
        if constexpr (std::is_same_v<T, float>) {
          row[c] = v;
        } else {
          row[c] = static_cast<T>(std::rint(clamp01(v) * scale));
        }
      }
    }
  }
}

}  // namespace

void copy_text(char *buf, size_t size, const std::string &text) noexcept {
  if (buf == nullptr || size == 0) return;
  const size_t n = std::min(size - 1, text.size());
  std::memcpy(buf, text.data(), n);
  buf[n] = '\0';
}

void copy_out(const float *src, int src_channels, const DfkImage &dst) {
  switch (dst.bytes_per_channel) {
    case 1: store_rows<uint8_t>(src, src_channels, dst); break;
    case 2: store_rows<uint16_t>(src, src_channels, dst); break;
    case 4: store_rows<float>(src, src_channels, dst); break;
    default: throw std::runtime_error("unsupported output depth");
  }
}

}  // namespace dfk
