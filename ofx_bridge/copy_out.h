// copy_out.h: the one copy on the way out of Python, into the host's output image (and the
// bridge's copy of a message into a caller's text buffer).
#ifndef DEFLICKER_OFX_BRIDGE_COPY_OUT_H
#define DEFLICKER_OFX_BRIDGE_COPY_OUT_H

#include "bridge.h"

#include <string>

namespace dfk {

/** Copy a float32 (H, W, src_channels) C-contiguous frame into dst, converting to dst's depth:
 * byte/short get rint(clamp(x, 0, 1) * max) (NaN -> 0), float is copied as is. A missing alpha
 * is 1; missing colour channels repeat the last one. Throws std::runtime_error on a bad depth. */
void copy_out(const float *src, int src_channels, const DfkImage &dst);

/** Copy `text` into buf (size bytes), truncated to fit, always NUL-terminated; nothing if size is 0. */
void copy_text(char *buf, size_t size, const std::string &text) noexcept;

}  // namespace dfk

#endif  // DEFLICKER_OFX_BRIDGE_COPY_OUT_H
