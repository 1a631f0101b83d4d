// host.h: the host's state (options, the loaded clip, scripted faults), effects and clips, and fetchSuite.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "images.h"
#include "params.h"
#include "props.h"
#include "video.h"

/** A fault injected into the Nth source frame the first time it is fetched (one-shot). */
struct Injection {
  std::string kind;  // "missing-frame" | "wrong-size" | "nan"
  int frame = 0;
  bool spent = false;
};

/** A scripted "yes" (abort, cancel): answers true after `after` calls, until the action it fired in ends. */
struct Script {
  int after = -1;  // -1: never
  bool trigger();
  void endAction(const std::string &token);

 private:
  std::mutex mutex_;
  int calls_ = 0;
  std::string firedBy_;
  bool spent_ = false;
};

struct HostOptions {
  std::string hostName = "DaVinciResolveLite";
  Depth depth = Depth::Float;
  std::string components = kOfxImageComponentRGBA;  // of every clip: RGBA or RGB
  bool negativeRowBytes = false;
  int firstFrame = 0;  // the source clip's frame range starts here
  std::vector<Injection> injections;
  bool noPersistentMessages = false;  // the message suite V2 is not offered (V1 only: dialogs)
  bool progressFails = false;         // progressUpdate answers kOfxStatFailed (no bar shown), never "stop"
  int rodPad = 0;                     // the source's region of definition is this much larger than its images
  bool premultiplied = false;         // an RGBA source is premultiplied: it declares so and hands over colour * alpha
  bool halfFloat = false;             // float images hold half-precision values (a host with a 16-bit float pipeline)
  bool filePathGiven = false;  // --plugin-file-path: report filePath ("" = none) instead of the bundle's directory
  std::string filePath;
};

/** A clip (descriptor or instance). */
struct OfxImageClipStruct {
  OfxImageClipStruct(std::string name, OfxImageEffectStruct *effect);
  std::string name;
  PropertySet props;
  OfxImageEffectStruct *effect;
};

/** An effect: the plugin descriptor, a per-context descriptor, or an instance. */
struct OfxImageEffectStruct {
  OfxImageEffectStruct(bool descriptor, std::string context, int index);
  OfxImageEffectStruct(const OfxImageEffectStruct &contextDescriptor, int index);  // an instance
  ~OfxImageEffectStruct();

  bool descriptor;
  std::string context;
  int index;  // instance number (-1 for descriptors)
  PropertySet props;
  ParamSet params;
  std::vector<std::unique_ptr<OfxImageClipStruct>> clips;
  std::mutex renderMutex;  // serializes renders of an instance-safe plugin

  OfxImageClipStruct *clip(const std::string &name) const;
  OfxImageClipStruct *defineClip(const std::string &name);
};

using Effect = OfxImageEffectStruct;
using Clip = OfxImageClipStruct;

/** What a render thread is rendering (for clipGetImage on the Output clip and the timeline). */
struct RenderContext {
  Effect *effect;
  double time;
  Image *output;
  std::atomic<int> sourceFetches{0};       // Source images lent during this Render
  std::atomic<long long> fetchNanos{0};    // wall time spent serving them (clipGetImage)
  std::atomic<long long> fetchCpuNanos{0}; // process CPU time meanwhile
};
RenderContext *&renderContext();

struct Host {
  HostOptions options;
  Video video;
  PropertySet props{"host"};
  OfxHost ofx{};
  Script abort, cancel;
  std::mutex injectionMutex;
  std::vector<std::string> supportedDepths;
};

Host &host();
void initHost(const HostOptions &options, Video video);
bool isLiveEffect(const void *handle);
