// copy_out.h: the one copy on the way out of Python, into the host's output image.
#ifndef DEFLICKER_OFX_BRIDGE_COPY_OUT_H
#define DEFLICKER_OFX_BRIDGE_COPY_OUT_H

#include "bridge.h"

namespace dfk {

/** Copy a float32 (H, W, src_channels) C-contiguous frame into dst, converting to dst's depth:
 * byte/short get rint(clamp(x, 0, 1) * max) (NaN -> 0), float is copied as is. A missing alpha
 * is 1; missing colour channels repeat the last one. Throws std::runtime_error on a bad depth. */
void copy_out(const float *src, int src_channels, const DfkImage &dst);

}  // namespace dfk

#endif  // DEFLICKER_OFX_BRIDGE_COPY_OUT_H
