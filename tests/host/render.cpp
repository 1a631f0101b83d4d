// render.cpp: the render loop and button presses.
#include "render.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <exception>
#include <mutex>
#include <thread>

#include "common.h"
#include "pixels.h"

namespace {

std::mutex unsafeMutex;  // serializes every render of a RenderUnsafe plugin

/** CPU time of the whole process (all threads): with one render thread, what a Render cost
 *  whatever else runs on the machine. */
double processCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

PropertySet timeArgs(double time) {
  PropertySet in("inArgs");
  in.declareDouble(kOfxPropTime, {time});
  in.declareDouble(kOfxImageEffectPropRenderScale, {1.0, 1.0});
  return in;
}

void framesNeeded(Plugin &plugin, Effect &instance, double time) {
  if (!plugin.descriptor.props.getInt(kOfxImageEffectPropTemporalClipAccess)) return;
  PropertySet in = timeArgs(time);
  PropertySet out("outArgs");
  std::string key = std::string(kOfxImageClipPropFrameRangePrefix) + kOfxImageEffectSimpleSourceClipName;
  out.declareDouble(key.c_str(), {time, time}, true);
  OfxStatus st = plugin.action(kOfxImageEffectActionGetFramesNeeded, &instance, &in, &out, true);
  std::vector<Json> ranges;
  for (double v : out.getDoubles(key.c_str())) ranges.push_back(json(v));
  emit("frames-needed", {{"instance", json(instance.index)}, {"time", json(time)}, {"status", json(st)},
                         {"ranges", jsonArray(ranges)}});
}

OfxStatus renderOne(Plugin &plugin, Effect &instance, int frame, Results &results) {
  const Host &h = host();
  double time = h.options.firstFrame + frame;
  Clip &outClip = *instance.clip(kOfxImageEffectOutputClipName);
  int comps = outClip.props.getString(kOfxImageEffectPropComponents) == kOfxImageComponentRGB ? 3 : 4;
  Depth depth = depthFromName(outClip.props.getString(kOfxImageEffectPropPixelDepth));
  PixelBuffer pixels = takePixelBuffer(Image::bytesFor(h.video.width, h.video.height, comps, depth));
  std::fill(pixels->begin(), pixels->end(), 0);  // recycled memory: nothing left over from another frame
  Image output(h.video.width, h.video.height, comps, depth, h.options.negativeRowBytes, pixels->data());
  PropertySet in = timeArgs(time);
  in.declareString(kOfxImageEffectPropFieldToRender, {kOfxImageFieldNone});
  in.declareInt(kOfxImageEffectPropRenderWindow, {0, 0, h.video.width, h.video.height});
  in.declareInt(kOfxImageEffectPropSequentialRenderStatus, {0});
  in.declareInt(kOfxImageEffectPropInteractiveRenderStatus, {0});
  in.declareInt(kOfxImageEffectPropRenderQualityDraft, {0});
  in.declareInt(kOfxImageEffectPropThumbnailRender, {0});

  std::string safety = plugin.descriptor.props.getString(kOfxImageEffectPluginRenderThreadSafety);
  std::unique_lock<std::mutex> globalLock(unsafeMutex, std::defer_lock), instanceLock(instance.renderMutex, std::defer_lock);
  if (safety == kOfxImageEffectRenderUnsafe) globalLock.lock();
  else if (safety != kOfxImageEffectRenderFullySafe) instanceLock.lock();

  RenderContext context{&instance, time, &output};
  renderContext() = &context;
  auto start = std::chrono::steady_clock::now();
  double cpuStart = processCpuSeconds();
  OfxStatus st = plugin.action(kOfxImageEffectActionRender, &instance, &in, nullptr, true);
  double cpu = processCpuSeconds() - cpuStart;
  std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - start;
  renderContext() = nullptr;
  emit("render", {{"instance", json(instance.index)}, {"frame", json(frame)}, {"time", json(time)}, {"status", json(st)},
                  {"seconds", json(seconds.count())}, {"fetched", json(context.sourceFetches.load())},
                  {"fetch_seconds", json(double(context.fetchNanos.load()) * 1e-9)}, {"cpu_seconds", json(cpu)},
                  {"fetch_cpu_seconds", json(double(context.fetchCpuNanos.load()) * 1e-9)}});
  results.status[frame] = st;
  if (st == kOfxStatOK && results.keepPixels) {
    results.pixels[frame].resize(size_t(h.video.width) * h.video.height * 4);
    output.toFloat(results.pixels[frame].data());
  }
  return st;
}

}  // namespace

void renderSequence(Plugin &plugin, Effect &instance, const std::vector<int> &frames, int threads, Results &results,
                    const std::function<void()> &onStarted) {
  if (frames.empty()) return;
  double first = host().options.firstFrame;
  PropertySet in("inArgs");
  in.declareDouble(kOfxImageEffectPropFrameRange, {first + *std::min_element(frames.begin(), frames.end()),
                                                   first + *std::max_element(frames.begin(), frames.end())});
  in.declareDouble(kOfxImageEffectPropFrameStep, {1.0});
  in.declareInt(kOfxPropIsInteractive, {0});
  in.declareDouble(kOfxImageEffectPropRenderScale, {1.0, 1.0});
  in.declareInt(kOfxImageEffectPropSequentialRenderStatus, {0});
  in.declareInt(kOfxImageEffectPropInteractiveRenderStatus, {0});
  plugin.require(plugin.action(kOfxImageEffectActionBeginSequenceRender, &instance, &in), "BeginSequenceRender");

  std::atomic<size_t> next{0};
  std::mutex startedMutex;
  std::condition_variable startedCv;
  bool started = false;
  auto worker = [&] {
    for (size_t i; (i = next++) < frames.size();) {
      framesNeeded(plugin, instance, first + frames[i]);
      {
        std::lock_guard<std::mutex> lock(startedMutex);
        started = true;
      }
      startedCv.notify_all();
      renderOne(plugin, instance, frames[i], results);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t) pool.emplace_back(worker);
  std::exception_ptr failure;  // never unwind past running render threads
  if (onStarted) {
    std::unique_lock<std::mutex> lock(startedMutex);
    startedCv.wait(lock, [&] { return started; });
    lock.unlock();
    try {
      onStarted();
    } catch (...) {
      failure = std::current_exception();
    }
  }
  for (auto &t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
  plugin.require(plugin.action(kOfxImageEffectActionEndSequenceRender, &instance, &in), "EndSequenceRender");
}

OfxStatus pressButton(Plugin &plugin, Effect &instance, const std::string &name) {
  Param *p = instance.params.find(name);
  if (!p || p->type != kOfxParamTypePushButton) throw HostError("--press " + name + ": no such push button", 2);
  OfxStatus st = plugin.instanceChanged(instance, kOfxTypeParameter, name);
  emit("press", {{"instance", json(instance.index)}, {"name", json(name)}, {"status", json(st)}});
  return st;
}
