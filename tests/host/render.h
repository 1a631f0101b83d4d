// render.h: sequence renders (any order, several threads), button presses, results.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "plugin.h"

/** Rendered frames by source frame index: float RGBA, top-down; empty when the render failed. */
struct Results {
  explicit Results(int frames) : pixels(frames), status(frames, -1) {}
  std::vector<std::vector<float>> pixels;
  std::vector<int> status;  // OFX status of the last render of each frame (-1: not rendered)
  bool keepPixels = true;    // false: statuses only (--discard)
};

/** Begin/EndSequenceRender around GetFramesNeeded + Render of `frames` (indices) on `threads` threads.
 *  `onStarted` runs on the calling thread once the first Render has begun (e.g. a button press). */
void renderSequence(Plugin &plugin, Effect &instance, const std::vector<int> &frames, int threads, Results &results,
                    const std::function<void()> &onStarted = {});

/** A push-button press from the UI: Begin/InstanceChanged/EndInstanceChanged (reason UserEdited). */
OfxStatus pressButton(Plugin &plugin, Effect &instance, const std::string &name);
