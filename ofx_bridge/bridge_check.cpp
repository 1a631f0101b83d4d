// bridge_check.cpp: a command-line driver of the bridge C ABI, without OFX, for
// tests/test_plugin_build.py. It serves a synthetic clip from BOTTOM-UP buffers (as OFX hosts
// store them) and prints one `key value` line per fact. Usage:
//   deflicker_bridge_check [--attach] views|render BPC CH STRENGTH|errors|cancel|threads N
// --attach: initialize Python first, like a host that embeds Python (Nuke).
#include <Python.h>

#include "bridge.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kW = 24, kH = 16, kFrames = 5;

/** Normalized test value of (frame, top-down row, column, channel). */
float value(int f, int y, int x, int c) { return static_cast<float>((x * 7 + y * 13 + c * 29 + f * 3) % 256) / 255.0f; }

/** A bottom-up buffer of one frame plus its top-down view. */
struct Frame {
  std::vector<unsigned char> bytes;
  DfkImage view{};

  Frame(int f, int bpc, int ch, int width = kW, float poison = 0.0f) : bytes(static_cast<size_t>(width) * kH * ch * bpc) {
    const ptrdiff_t row = static_cast<ptrdiff_t>(width) * ch * bpc;
    for (int y = 0; y < kH; ++y) {
      unsigned char *mem = bytes.data() + (kH - 1 - y) * row;  // bottom-up storage
      for (int x = 0; x < width; ++x)
        for (int c = 0; c < ch; ++c) {
          const float v = value(f, y, x, c) + poison;
          unsigned char *p = mem + (static_cast<ptrdiff_t>(x) * ch + c) * bpc;
          if (bpc == 1) *p = static_cast<unsigned char>(std::lround(v * 255));
          else if (bpc == 2) { const unsigned short s = static_cast<unsigned short>(std::lround(v * 65535)); std::memcpy(p, &s, 2); }
          else std::memcpy(p, &v, 4);
        }
    }
    view = {bytes.data() + (kH - 1) * row, width, kH, ch, bpc, -row};
  }
};

/** The fake host: frames by index, counts fetches and releases, optional faults. */
struct Host {
  int bpc, ch;
  int missing = -1, narrow = -1, nan = -1;
  int sleep_ms = 0;
  bool cancel = false;
  std::atomic<int> fetched{0}, released{0}, progress_calls{0};
};

int fetch(void *ctx, int index, DfkImage *image, void **token) {
  Host &h = *static_cast<Host *>(ctx);
  if (h.sleep_ms) std::this_thread::sleep_for(std::chrono::milliseconds(h.sleep_ms));
  if (index == h.missing || index < 0 || index >= kFrames) return 1;
  auto frame = std::make_unique<Frame>(index, h.bpc, h.ch, index == h.narrow ? kW - 1 : kW,
                                       index == h.nan ? std::nanf("") : 0.0f);
  *image = frame->view;
  *token = frame.release();
  ++h.fetched;
  return 0;
}

void release(void *ctx, void *token) {
  std::unique_ptr<Frame> frame(static_cast<Frame *>(token));
  ++static_cast<Host *>(ctx)->released;
}

void progress(void *ctx, double, const char *) { ++static_cast<Host *>(ctx)->progress_calls; }
int cancel(void *ctx) { return static_cast<Host *>(ctx)->cancel ? 1 : 0; }

DfkCallbacks callbacks(Host &h) { return DfkCallbacks{&h, fetch, release, progress, cancel}; }

DfkSettings settings(double strength, const char *method = "fast") { return DfkSettings{strength, method, 1, 256, -1}; }

std::string open(Host &h, const DfkSettings &s, DfkStatus *status, std::string *err) {
  const DfkClipInfo info{kW, kH, h.ch, kFrames, 24.0, h.bpc == 1 ? 8 : h.bpc == 2 ? 16 : 32, 0};
  char key[256] = {0}, msg[512] = {0};
  const DfkCallbacks cb = callbacks(h);
  *status = dfk_open_clip("instance-1", &info, &s, &cb, "persisted", key, sizeof key, msg, sizeof msg);
  *err = msg;
  return key;
}

int views() {
  for (int bpc : {1, 2, 4}) {
    Host h{bpc, 4};
    DfkStatus st;
    std::string err;
    const std::string key = open(h, settings(1.0), &st, &err);
    char facts[8192] = {0};
    dfk_status(key.c_str(), facts, sizeof facts);
    std::printf("views%d status=%d fetched=%d released=%d facts=%s\n", bpc, st, h.fetched.load(), h.released.load(), facts);
  }
  return 0;
}

int render(int bpc, int ch, double strength) {
  Host h{bpc, ch};
  DfkStatus st;
  std::string err;
  const DfkSettings s = settings(strength);
  const std::string key = open(h, s, &st, &err);
  Frame out(0, bpc, ch);  // overwritten
  const DfkCallbacks cb = callbacks(h);
  char msg[512] = {0};
  st = dfk_render(key.c_str(), 2, &s, &cb, &out.view, msg, sizeof msg);
  const double maxv = bpc == 1 ? 255.0 : 65535.0;
  int bad = 0;
  for (int y = 0; y < kH; ++y)
    for (int x = 0; x < kW; ++x)
      for (int c = 0; c < ch; ++c) {
        const unsigned char *p = static_cast<unsigned char *>(out.view.data) + y * out.view.row_bytes + (x * ch + c) * bpc;
        const Frame src(2, bpc, ch);  // the input as the plugin sees it, quantized
        const unsigned char *q = static_cast<const unsigned char *>(src.view.data) + y * src.view.row_bytes + (x * ch + c) * bpc;
        double in = 0, got = 0, want = 0;
        if (bpc == 1) { in = static_cast<float>(*q) / 255.0f; got = *p; }
        else if (bpc == 2) { unsigned short a, b; std::memcpy(&a, q, 2); std::memcpy(&b, p, 2); in = static_cast<float>(a) / 65535.0f; got = b; }
        else { float a, b; std::memcpy(&a, q, 4); std::memcpy(&b, p, 4); in = a; got = b; }
        const float v = static_cast<float>(in) * static_cast<float>(strength);
        want = bpc == 4 ? v : std::rint(std::fmin(std::fmax(v, 0.0f), 1.0f) * static_cast<float>(maxv));
        if (std::fabs(got - want) > (bpc == 4 ? 1e-6 : 0.0)) ++bad;
      }
  std::printf("render status=%d mismatches=%d fetched=%d released=%d progress=%d err=%s\n", st, bad, h.fetched.load(),
              h.released.load(), h.progress_calls.load(), msg);
  return 0;
}

void report(const char *name, Host &h, const char *method, int index) {
  DfkStatus st;
  std::string err;
  const DfkSettings s = settings(1.0, method);
  std::string key = open(h, s, &st, &err);
  char msg[512] = {0};
  if (st == DFK_OK) {
    Frame out(0, h.bpc, h.ch);
    const DfkCallbacks cb = callbacks(h);
    st = dfk_render(key.c_str(), index, &s, &cb, &out.view, msg, sizeof msg);
    err = msg;
  }
  std::printf("%s status=%d fetched=%d released=%d err=%s\n", name, st, h.fetched.load(), h.released.load(), err.c_str());
}

int errors() {
  { Host h{4, 4}; h.missing = 3; report("missing", h, "fast", 1); }
  { Host h{4, 4}; h.narrow = 1; report("narrow", h, "neural", 1); }
  { Host h{4, 3}; h.nan = 4; report("nan", h, "fast", 0); }
  { Host h{4, 4}; report("python", h, "boom", 1); }
  { Host h{4, 4}; report("ok_after", h, "fast", 1); }
  return 0;
}

int cancelled() {
  Host h{1, 4};
  h.cancel = true;
  DfkStatus st;
  std::string err;
  const std::string key = open(h, settings(1.0), &st, &err);
  const DfkCallbacks cb = callbacks(h);
  char msg[512] = {0};
  st = dfk_analyze(key.c_str(), 1, &cb, msg, sizeof msg);
  std::printf("cancel status=%d released=%d fetched=%d err=%s\n", st, h.released.load(), h.fetched.load(), msg);
  return 0;
}

int threads(int n) {
  Host warm{4, 4};
  DfkStatus st;
  std::string err;
  const std::string key = open(warm, settings(1.0), &st, &err);
  { const DfkCallbacks cb = callbacks(warm); char msg[256]; dfk_analyze(key.c_str(), 0, &cb, msg, sizeof msg); }
  std::vector<std::unique_ptr<Host>> hosts;
  for (int i = 0; i < n; ++i) {
    hosts.push_back(std::unique_ptr<Host>(new Host{4, 4}));
    hosts.back()->sleep_ms = 300;
  }
  std::atomic<int> ok{0};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int i = 0; i < n; ++i)
    pool.emplace_back([&, i] {
      Frame out(0, 4, 4);
      const DfkSettings s = settings(1.0);
      const DfkCallbacks cb = callbacks(*hosts[static_cast<size_t>(i)]);
      char msg[256];
      if (dfk_render(key.c_str(), i % kFrames, &s, &cb, &out.view, msg, sizeof msg) == DFK_OK) ++ok;
    });
  for (auto &t : pool) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("threads ok=%d of=%d seconds=%.3f sleep=0.300\n", ok.load(), n, secs);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  int a = 1;
  if (a < argc && std::strcmp(argv[a], "--attach") == 0) {
    Py_InitializeEx(0);
    PyRun_SimpleString("import sys; sys.host_marker = 'preinitialized'");
    PyEval_SaveThread();
    ++a;
  }
  const std::string cmd = a < argc ? argv[a] : "";
  char err[512] = {0};
  const DfkStatus init = dfk_init(err, sizeof err);
  std::printf("init status=%d err=%s\n", init, err);
  if (init != DFK_OK) return 1;
  if (cmd == "views") return views();
  if (cmd == "render" && a + 3 < argc) return render(std::atoi(argv[a + 1]), std::atoi(argv[a + 2]), std::atof(argv[a + 3]));
  if (cmd == "errors") return errors();
  if (cmd == "cancel") return cancelled();
  if (cmd == "threads" && a + 1 < argc) return threads(std::atoi(argv[a + 1]));
  std::fprintf(stderr, "usage: %s [--attach] views|render BPC CH STRENGTH|errors|cancel|threads N\n", argv[0]);
  return 2;
}
