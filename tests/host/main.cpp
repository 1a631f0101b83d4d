// main.cpp: `ofxhost describe BUNDLE` and `ofxhost render BUNDLE IN -o OUT [...]`.
//
// A small OpenFX host for tests and for rendering a clip through a plugin from the command line.
// stdout carries one JSON event per line; errors end the process with "ofxhost: error: ..." on
// stderr and a non-zero exit code (2 usage, 3 input/bundle, 1 plugin or render failure).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common.h"
#include "plugin.h"
#include "python_host.h"
#include "render.h"

namespace {

const char *kUsage =
    "usage: ofxhost describe BUNDLE [--host-name NAME] [--plugin-file-path PATH]\n"
    "       ofxhost render BUNDLE IN (-o OUT | --raw-out FILE | --discard) [--frames A-B] [--order shuffle|reverse|list:3,1,2]\n"
    "               [--threads N] [--instances N] [--param NAME=VALUE ...] [--press BUTTON [--press-instance I]]\n"
    "               [--abort-after N] [--cancel-after N] [--host-python] [--host-name NAME] [--rowbytes negative]\n"
    "               [--depth float|short|byte] [--components rgba|rgb] [--inject missing-frame:K|wrong-size:K|nan:K ...] [--retry-failed]\n"
    "               [--context filter|general] [--first-frame T] [--fps F] [--plugin-file-path PATH]\n"
    "               [--copy] [--change NAME=VALUE ...] [--no-persistent-messages] [--progress-fails] [--rod-pad N] [--premult]\n"
    "               [--half-float]\n";

struct Args {
  std::string command, bundle, input, output, rawOut, frames, order, press, context = kOfxImageEffectContextFilter;
  int threads = 1, instances = 1, pressInstance = 0;
  bool hostPython = false, retryFailed = false, discard = false, copy = false;
  double fps = 0;
  HostOptions host;
  int abortAfter = -1, cancelAfter = -1;
  std::vector<std::pair<std::string, std::string>> params, changes;
};

std::pair<std::string, std::string> nameValue(const std::string &option, const std::string &v) {
  size_t eq = v.find('=');
  if (eq == std::string::npos || eq == 0) throw HostError(option + " needs NAME=VALUE, not '" + v + "'", 2);
  return {v.substr(0, eq), v.substr(eq + 1)};
}

int toInt(const std::string &option, const std::string &text) {
  char *end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end) throw HostError(option + ": '" + text + "' is not an integer", 2);
  return static_cast<int>(v);
}

Args parse(int argc, char **argv) {
  Args a;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string opt = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw HostError(opt + " needs a value", 2);
      return argv[++i];
    };
    if (opt == "-o" || opt == "--output") a.output = value();
    else if (opt == "--raw-out") a.rawOut = value();
    else if (opt == "--frames") a.frames = value();
    else if (opt == "--order") a.order = value();
    else if (opt == "--threads") a.threads = toInt(opt, value());
    else if (opt == "--instances") a.instances = toInt(opt, value());
    else if (opt == "--press") a.press = value();
    else if (opt == "--press-instance") a.pressInstance = toInt(opt, value());
    else if (opt == "--abort-after") a.abortAfter = toInt(opt, value());
    else if (opt == "--cancel-after") a.cancelAfter = toInt(opt, value());
    else if (opt == "--host-python") a.hostPython = true;
    else if (opt == "--retry-failed") a.retryFailed = true;
    else if (opt == "--discard") a.discard = true;
    else if (opt == "--copy") a.copy = true;
    else if (opt == "--change") a.changes.push_back(nameValue(opt, value()));
    else if (opt == "--no-persistent-messages") a.host.noPersistentMessages = true;
    else if (opt == "--progress-fails") a.host.progressFails = true;
    else if (opt == "--rod-pad") a.host.rodPad = toInt(opt, value());
    else if (opt == "--premult") a.host.premultiplied = true;
    else if (opt == "--half-float") a.host.halfFloat = true;
    else if (opt == "--host-name") a.host.hostName = value();
    else if (opt == "--plugin-file-path") {
      a.host.filePath = value();
      a.host.filePathGiven = true;
    }
    else if (opt == "--depth") a.host.depth = depthFromName(value());
    else if (opt == "--components") {
      std::string v = value();
      if (v != "rgba" && v != "rgb") throw HostError("--components: rgba or rgb", 2);
      a.host.components = v == "rgba" ? kOfxImageComponentRGBA : kOfxImageComponentRGB;
    } else if (opt == "--first-frame") a.host.firstFrame = toInt(opt, value());
    else if (opt == "--fps") a.fps = std::atof(value().c_str());
    else if (opt == "--rowbytes") {
      std::string v = value();
      if (v != "negative" && v != "positive") throw HostError("--rowbytes: negative or positive", 2);
      a.host.negativeRowBytes = v == "negative";
    } else if (opt == "--context") {
      std::string v = value();
      if (v != "filter" && v != "general") throw HostError("--context: filter or general", 2);
      a.context = v == "filter" ? kOfxImageEffectContextFilter : kOfxImageEffectContextGeneral;
    } else if (opt == "--param") {
      a.params.push_back(nameValue(opt, value()));
    } else if (opt == "--inject") {
      std::string v = value();
      size_t colon = v.find(':');
      Injection inj{v.substr(0, colon), colon == std::string::npos ? -1 : toInt(opt, v.substr(colon + 1))};
      if ((inj.kind != "missing-frame" && inj.kind != "wrong-size" && inj.kind != "nan") || inj.frame < 0)
        throw HostError("--inject: missing-frame:K, wrong-size:K or nan:K, not '" + v + "'", 2);
      a.host.injections.push_back(inj);
    } else if (opt == "-h" || opt == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (!opt.empty() && opt[0] == '-') {
      throw HostError("unknown option " + opt, 2);
    } else {
      positional.push_back(opt);
    }
  }
  if (positional.empty()) throw HostError("missing command (describe or render)", 2);
  a.command = positional[0];
  size_t wanted = a.command == "describe" ? 2 : a.command == "render" ? 3 : 0;
  if (!wanted) throw HostError("unknown command '" + a.command + "'", 2);
  if (positional.size() != wanted) throw HostError(a.command + ": wrong number of arguments", 2);
  a.bundle = positional[1];
  if (a.command == "render") {
    a.input = positional[2];
    if (a.output.empty() && a.rawOut.empty() && !a.discard)
      throw HostError("render needs -o OUT, --raw-out FILE or --discard", 2);
    if (a.instances < 1 || a.threads < 1) throw HostError("--instances and --threads must be >= 1", 2);
    if (a.pressInstance < 0 || a.pressInstance >= a.instances) throw HostError("--press-instance out of range", 2);
    if (a.host.premultiplied && a.host.components != kOfxImageComponentRGBA) throw HostError("--premult needs RGBA components", 2);
    if (a.host.halfFloat && a.host.depth != Depth::Float) throw HostError("--half-float needs --depth float", 2);
    if (a.copy && a.instances != 1) throw HostError("--copy makes its own second instance: leave --instances at 1", 2);
    for (const auto &inj : a.host.injections)
      if (inj.kind == "nan" && a.host.depth != Depth::Float) throw HostError("--inject nan needs --depth float", 2);
  }
  return a;
}

/** The frame indices to render, in render order. */
std::vector<int> frameOrder(const Args &a, int count) {
  std::vector<int> frames;
  if (a.order.rfind("list:", 0) == 0) {
    std::string list = a.order.substr(5);
    for (size_t at = 0; at <= list.size();) {
      size_t comma = std::min(list.find(',', at), list.size());
      frames.push_back(toInt("--order", list.substr(at, comma - at)));
      at = comma + 1;
    }
  } else {
    int first = 0, last = count - 1;
    if (!a.frames.empty()) {
      size_t dash = a.frames.find('-');
      if (dash == std::string::npos) throw HostError("--frames needs A-B (inclusive)", 2);
      first = toInt("--frames", a.frames.substr(0, dash));
      last = toInt("--frames", a.frames.substr(dash + 1));
    }
    for (int i = first; i <= last; ++i) frames.push_back(i);
    if (a.order == "reverse") std::reverse(frames.begin(), frames.end());
    else if (a.order == "shuffle") std::shuffle(frames.begin(), frames.end(), std::mt19937(1234));
    else if (!a.order.empty()) throw HostError("--order: shuffle, reverse or list:A,B,...", 2);
  }
  for (int f : frames)
    if (f < 0 || f >= count) throw HostError("frame " + std::to_string(f) + " is outside the clip (0-" + std::to_string(count - 1) + ")", 2);
  if (frames.empty()) throw HostError("no frames to render", 2);
  return frames;
}

int describe(const Args &a) {
  initHost(a.host, Video{});
  Plugin plugin(a.bundle);
  plugin.loadAndDescribe();
  emit("descriptor", {{"props", propsJson(plugin.descriptor.props)}});
  for (const auto &context : plugin.contexts()) {
    Effect &desc = plugin.describeInContext(context);
    emit("context", {{"context", json(context)}, {"props", propsJson(desc.props)}});
    for (const auto &c : desc.clips) emit("clip", {{"context", json(context)}, {"name", json(c->name)}, {"props", propsJson(c->props)}});
    for (const auto &p : desc.params.params)
      emit("param", {{"context", json(context)}, {"name", json(p->name)}, {"type", json(p->type)}, {"props", propsJson(p->props)}});
  }
  plugin.unload();
  return 0;
}

void writeOutputs(const Args &a, const Results &results, const std::vector<int> &frames) {
  const Video &src = host().video;
  std::vector<int> sorted = frames;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  Video out;
  out.width = src.width;
  out.height = src.height;
  out.fps = src.fps;
  out.alpha = src.alpha;
  out.eightBit = src.eightBit;  // like `deflicker run`: the output keeps the input's bit depth
  out.frames = static_cast<int>(sorted.size());
  for (int f : sorted)
    for (float v : results.pixels[f]) out.pixels.push_back(out.eightBit ? quantize8as16(v) : quantize16(v));
  if (!a.output.empty()) writeVideo(a.output, out);
  if (!a.rawOut.empty()) {
    std::string tmp = a.rawOut + ".tmp";
    FILE *fp = std::fopen(tmp.c_str(), "wb");
    bool ok = fp != nullptr;
    for (int f : sorted)
      if (ok) ok = std::fwrite(results.pixels[f].data(), sizeof(float), results.pixels[f].size(), fp) == results.pixels[f].size();
    if (fp) ok = (std::fclose(fp) == 0) && ok;
    if (!ok || std::rename(tmp.c_str(), a.rawOut.c_str()) != 0) throw HostError("cannot write " + a.rawOut, 3);
  }
  emit("wrote", {{"output", json(a.output)}, {"raw", json(a.rawOut)}, {"frames", json(out.frames)},
                 {"width", json(out.width)}, {"height", json(out.height)}});
}

/** --copy: the node renders a frame, the user copies it (the copy renders too), then deletes the original. */
void copyThenDeleteOriginal(Plugin &plugin, std::vector<std::unique_ptr<Effect>> &instances, int frame, Results &results) {
  Effect &original = *instances.front();
  renderSequence(plugin, original, {frame}, 1, results);
  plugin.require(plugin.action(kOfxActionSyncPrivateData, &original), "SyncPrivateData");
  instances.push_back(plugin.copyInstance(original, 1));
  renderSequence(plugin, *instances.back(), {frame}, 1, results);
  plugin.destroyInstance(std::move(instances.front()));
  instances.erase(instances.begin());
  emit("deleted", {{"instance", json(0)}});
}

/** --change NAME=VALUE: the user edits a param after the renders. */
void changeParam(Plugin &plugin, Effect &instance, const std::string &name, const std::string &value) {
  Param *p = instance.params.find(name);
  if (!p) throw HostError("--change " + name + ": the plugin has no such parameter", 2);
  p->setFromText(value);
  OfxStatus st = plugin.instanceChanged(instance, kOfxTypeParameter, name);
  emit("changed", {{"instance", json(instance.index)}, {"name", json(name)}, {"status", json(st)}});
}

int render(const Args &a) {
  Video video = readVideo(a.input, a.fps);
  emit("clip", {{"path", json(a.input)}, {"width", json(video.width)}, {"height", json(video.height)},
                {"frames", json(video.frames)}, {"fps", json(video.fps)}, {"alpha", json(video.alpha ? 1 : 0)}});
  std::vector<int> frames = frameOrder(a, video.frames);
  initHost(a.host, std::move(video));
  host().abort.after = a.abortAfter;
  host().cancel.after = a.cancelAfter;
  if (a.hostPython) startHostPython();

  Plugin plugin(a.bundle);
  plugin.loadAndDescribe();
  auto contexts = plugin.contexts();
  if (std::find(contexts.begin(), contexts.end(), a.context) == contexts.end())
    throw HostError("the plugin does not support " + a.context);
  std::vector<std::unique_ptr<Effect>> instances;
  for (int i = 0; i < a.instances; ++i) instances.push_back(plugin.createInstance(a.context, i, a.params));
  Results results(host().video.frames);
  results.keepPixels = !a.discard;
  if (a.copy) copyThenDeleteOriginal(plugin, instances, frames.front(), results);
  Effect &renderer = *instances.back();  // the render instance shadows the UI instance (0)
  std::function<void()> press;
  if (!a.press.empty()) press = [&] { pressButton(plugin, *instances[a.pressInstance], a.press); };

  renderSequence(plugin, renderer, frames, a.threads, results, press);
  for (const auto &change : a.changes) changeParam(plugin, renderer, change.first, change.second);
  std::vector<int> failed;
  for (int f : frames)
    if (results.status[f] != kOfxStatOK && std::find(failed.begin(), failed.end(), f) == failed.end()) failed.push_back(f);
  if (a.retryFailed && !failed.empty()) {
    renderSequence(plugin, renderer, failed, 1, results);
    failed.erase(std::remove_if(failed.begin(), failed.end(), [&](int f) { return results.status[f] == kOfxStatOK; }), failed.end());
  }
  for (auto &inst : instances) {  // like saving the project: sync private data, then read the params
    plugin.action(kOfxActionPurgeCaches, inst.get());
    plugin.require(plugin.action(kOfxActionSyncPrivateData, inst.get()), "SyncPrivateData");
    std::string values = "{";
    for (const auto &p : inst->params.params)
      if (p->components()) values += (values.size() > 1 ? ", " : "") + json(p->name).text + ": " + p->valueJson().text;
    emit("param-values", {{"instance", json(inst->index)}, {"values", Json{values + "}"}}});
  }
  for (auto &inst : instances) plugin.destroyInstance(std::move(inst));
  plugin.unload();
  emit("done", {{"rendered", json(int(frames.size()))}, {"failed", json(int(failed.size()))}});
  if (!failed.empty())
    throw HostError(std::to_string(failed.size()) + " of " + std::to_string(frames.size()) + " frames failed to render; nothing written");
  if (!a.discard) writeOutputs(a, results, frames);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  try {
    Args args = parse(argc, argv);
    return args.command == "describe" ? describe(args) : render(args);
  } catch (const HostError &e) {
    std::fflush(stdout);
    std::fprintf(stderr, "ofxhost: error: %s\n", e.what());
    return e.code;
  } catch (const std::exception &e) {
    std::fflush(stdout);
    std::fprintf(stderr, "ofxhost: error: %s\n", e.what());
    return 1;
  }
}
