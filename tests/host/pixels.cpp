// pixels.cpp: recycled pixel buffers and the source-frame cache (see pixels.h).
#include "pixels.h"

namespace {

class BufferPool {
 public:
  static BufferPool &instance() {
    static BufferPool *pool = new BufferPool;  // leaked: buffers may come back during exit
    return *pool;
  }

  PixelBuffer take(size_t bytes) {
    std::unique_ptr<std::vector<unsigned char>> buf;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = spare_.begin(); it != spare_.end(); ++it)
        if ((*it)->size() == bytes) {
          buf = std::move(*it);
          spare_.erase(it);
          break;
        }
    }
    if (!buf) buf = std::make_unique<std::vector<unsigned char>>(bytes);
    return PixelBuffer(buf.release(), [this](std::vector<unsigned char> *b) { giveBack(b); });
  }

 private:
  static constexpr size_t kSpare = 4;

  void giveBack(std::vector<unsigned char> *b) {
    std::unique_ptr<std::vector<unsigned char>> owned(b);
    std::lock_guard<std::mutex> lock(mutex_);
    if (spare_.size() < kSpare) spare_.push_back(std::move(owned));
  }

  std::mutex mutex_;
  std::vector<std::unique_ptr<std::vector<unsigned char>>> spare_;
};

}  // namespace

PixelBuffer takePixelBuffer(size_t bytes) { return BufferPool::instance().take(bytes); }

PixelBuffer FrameCache::get(int frame, int comps, Depth depth) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (it->frame == frame && it->comps == comps && it->depth == depth) {
      Entry hit = *it;
      entries_.erase(it);
      entries_.push_back(hit);
      return hit.pixels;
    }
  return nullptr;
}

void FrameCache::put(int frame, int comps, Depth depth, PixelBuffer pixels) {
  std::lock_guard<std::mutex> lock(mutex_);
  entries_.push_back({frame, comps, depth, std::move(pixels)});
  if (entries_.size() > kFrames) entries_.erase(entries_.begin());
}

FrameCache &frameCache() {
  static FrameCache *cache = new FrameCache;  // leaked, like the pool its buffers return to
  return *cache;
}
