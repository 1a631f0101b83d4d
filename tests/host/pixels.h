// pixels.h: pixel memory like a real host's: recycled buffers and a small cache of converted source frames.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "images.h"

/** Pixel memory for an image (contents undefined), recycled when its last holder drops it: serving
 *  a 1080p frame must not map and unmap 30 MB each time (that cost would land in the plugin's Render). */
using PixelBuffer = std::shared_ptr<std::vector<unsigned char>>;
PixelBuffer takePixelBuffer(size_t bytes);

/** Converted source frames, most recent last: like a host's frame cache, a frame fetched again
 *  (by a later render's window) is not converted again. Faulty (injected) frames bypass it. */
class FrameCache {
 public:
  static constexpr size_t kFrames = 8;

  PixelBuffer get(int frame, int comps, Depth depth);
  void put(int frame, int comps, Depth depth, PixelBuffer pixels);

 private:
  struct Entry {
    int frame, comps;
    Depth depth;
    PixelBuffer pixels;
  };
  std::mutex mutex_;
  std::vector<Entry> entries_;
};

/** The process's source-frame cache. */
FrameCache &frameCache();
