// bridge.cpp: the extern "C" bridge API (bridge.h) on top of the Python server module, embedded
// in this process or, where server_mode.h says so, in a child process (child_client.h).
//
// Every entry point is noexcept: Python exceptions become a DfkStatus plus
// "<Class>: <message>" in the caller's buffer. Host frames enter Python as read-only numpy
// VIEWS of the host buffers (top-down, any row stride); the rendered float32 frame leaves with
// one copy into the host's output image, converted to its depth. The GIL is dropped around
// every host callback and around the copy-out, so parallel render threads progress.
#include <pybind11/embed.h>
#include <pybind11/numpy.h>

#include "bridge.h"
#include "call_fields_gen.h"  // generated (deflicker.server.plugin_header)
#include "child_client.h"
#include "copy_out.h"
#include "runtime.h"
#include "server_mode.h"

#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

namespace py = pybind11;

namespace {

using dfk::copy_text;

/** Raise `deflicker.errors.<name>` (or `fallback` when deflicker is not importable). */
[[noreturn]] void raise_python(const char *name, PyObject *fallback, const std::string &message) {
  py::object cls;
  try {
    cls = py::module_::import("deflicker.errors").attr(name);
  } catch (py::error_already_set &) {
    cls = py::reinterpret_borrow<py::object>(fallback);
  }
  PyErr_SetString(cls.ptr(), message.c_str());
  throw py::error_already_set();
}

/**
 * The host callbacks of one bridge call. Owns every frame fetched during the call: a frame is
 * released when Python drops its view, and whatever is left when the call ends. After close()
 * the callbacks refuse to run (Python may keep a callable, never the host's context).
 */
class HostCalls {
 public:
  explicit HostCalls(const DfkCallbacks *cb) : cb_(cb) {}

  /** Fetch frame `index` as a read-only (H, W, C) numpy view with the host's strides. */
  py::array fetch(const std::shared_ptr<HostCalls> &self, int index) {
    if (cb_ == nullptr || cb_->fetch == nullptr) raise_python("VideoIOError", PyExc_OSError, "no frame source");
    DfkImage img{};
    void *token = nullptr;
    int rc = 1;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (closed_) raise_python("DeflickerError", PyExc_RuntimeError, "frame fetch outside its OFX action");
    }
    {
      py::gil_scoped_release nogil;
      rc = cb_->fetch(cb_->ctx, index, &img, &token);
    }
    if (rc != 0) raise_python("VideoIOError", PyExc_OSError, "source frame " + std::to_string(index) + " is not available from the host");
    track(token);
    if (img.data == nullptr || img.width <= 0 || img.height <= 0 || (img.channels != 3 && img.channels != 4) ||
        (img.bytes_per_channel != 1 && img.bytes_per_channel != 2 && img.bytes_per_channel != 4)) {
      release(token);
      raise_python("VideoIOError", PyExc_OSError, "source frame " + std::to_string(index) + " has an unsupported layout");
    }
    const py::dtype dtype = img.bytes_per_channel == 1   ? py::dtype::of<uint8_t>()
                            : img.bytes_per_channel == 2 ? py::dtype::of<uint16_t>()
                                                         : py::dtype::of<float>();
    const py::ssize_t pixel = static_cast<py::ssize_t>(img.channels) * img.bytes_per_channel;
    // The capsule keeps the frame alive until the view dies; it then releases it (if still held).
    auto owner = std::make_unique<std::pair<std::shared_ptr<HostCalls>, void *>>(self, token);
    py::capsule base(owner.get(), [](void *p) {
      std::unique_ptr<std::pair<std::shared_ptr<HostCalls>, void *>> held(
          static_cast<std::pair<std::shared_ptr<HostCalls>, void *> *>(p));
      held->first->release(held->second);
    });
    owner.release();
    py::array view(dtype, {static_cast<py::ssize_t>(img.height), static_cast<py::ssize_t>(img.width), static_cast<py::ssize_t>(img.channels)},
                   {static_cast<py::ssize_t>(img.row_bytes), pixel, static_cast<py::ssize_t>(img.bytes_per_channel)}, img.data, base);
    view.attr("setflags")(py::arg("write") = false);
    return view;
  }

  void progress(double fraction, const std::string &label) {
    if (cb_ == nullptr || cb_->progress == nullptr || is_closed()) return;
    py::gil_scoped_release nogil;
    cb_->progress(cb_->ctx, fraction, label.c_str());
  }

  bool cancel() {
    if (cb_ == nullptr || cb_->cancel == nullptr || is_closed()) return false;
    py::gil_scoped_release nogil;
    return cb_->cancel(cb_->ctx) != 0;
  }

  /** Release one frame if it is still held and the call is still open. A view's capsule calls
   *  this with the GIL held: it is dropped before taking the mutex (a thread holding the mutex
   *  may be waiting for the GIL) and while the host releases the image. */
  void release(void *token) noexcept {
    if (PyGILState_Check()) {
      py::gil_scoped_release nogil;
      release_held(token);
    } else {
      release_held(token);
    }
  }

  /** End of the bridge call: release every frame still held and disable the callbacks. */
  void close() noexcept {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (cb_ != nullptr && cb_->release != nullptr)
      for (void *token : held_) cb_->release(cb_->ctx, token);
    held_.clear();
    closed_ = true;
  }

 private:
  void release_held(void *token) noexcept {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (closed_ || held_.erase(token) == 0) return;
    if (cb_ != nullptr && cb_->release != nullptr) cb_->release(cb_->ctx, token);
  }
  void track(void *token) {
    const std::lock_guard<std::mutex> lock(mutex_);
    held_.insert(token);
  }
  bool is_closed() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }

  const DfkCallbacks *cb_;
  std::mutex mutex_;
  std::set<void *> held_;
  bool closed_ = false;
};

/** Python callables (fetch, progress, cancel) over one call's host callbacks; closes them on exit. */
struct Callables {
  std::shared_ptr<HostCalls> host;
  py::object fetch, progress, cancel;

  explicit Callables(const DfkCallbacks *cb) : host(std::make_shared<HostCalls>(cb)) {
    std::shared_ptr<HostCalls> h = host;
    fetch = py::cpp_function([h](int index) { return h->fetch(h, index); }, py::arg("index"));
    progress = py::none();
    cancel = py::none();
    if (cb != nullptr && cb->progress != nullptr)
      progress = py::cpp_function([h](double f, const std::string &label) { h->progress(f, label); },
                                  py::arg("fraction"), py::arg("label") = "");
    if (cb != nullptr && cb->cancel != nullptr) cancel = py::cpp_function([h]() { return h->cancel(); });
  }
  ~Callables() { host->close(); }
  Callables(const Callables &) = delete;
  Callables &operator=(const Callables &) = delete;
};

py::dict settings_dict(const DfkSettings *s) {
  py::dict d;
  dfk::for_each_setting(s, [&](const char *name, const auto &value) { d[name] = value; });
  return d;
}

/** Status and "<Class>: <message>" of the Python exception being handled. */
DfkStatus classify(py::error_already_set &e, std::string &message) {
  const py::object type = e.type();
  message = py::str(type.attr("__name__")).cast<std::string>() + ": " + py::str(e.value()).cast<std::string>();
  for (const py::handle cls : type.attr("__mro__")) {
    const std::string name = py::str(cls.attr("__name__")).cast<std::string>();
    if (name == "Cancelled") return DFK_CANCELLED;
    if (name == "VideoIOError") return DFK_BAD_FRAME;
    if (name == "UnknownClipError") return DFK_UNKNOWN_CLIP;
  }
  return DFK_ERROR;
}

/** Run `body(server)` with the GIL held; turn every failure into a status and a message. */
template <class Body>
DfkStatus call_server(const char *what, char *err, size_t err_size, Body &&body) noexcept {
  std::string message;
  DfkStatus status = DFK_OK;
  try {
    if (!dfk::ensure_python(message)) {
      copy_text(err, err_size, message);
      return DFK_NO_PYTHON;
    }
    py::gil_scoped_acquire gil;
    try {
      body(py::module_::import(dfk::server_module_name().c_str()));
    } catch (py::error_already_set &e) {
      status = classify(e, message);
      dfk::log_line(status == DFK_CANCELLED ? 1 : 3, std::string(what) + " failed: " + e.what());
    }
  } catch (const std::exception &e) {
    status = DFK_ERROR;
    message = std::string("RuntimeError: ") + e.what();
    dfk::log_line(3, std::string(what) + " failed: " + message);
  } catch (...) {
    status = DFK_ERROR;
    message = "RuntimeError: unknown C++ exception";
    dfk::log_line(3, std::string(what) + " failed: " + message);
  }
  copy_text(err, err_size, message);
  return status;
}

}  // namespace

extern "C" {

void dfk_log(int level, const char *message) noexcept { dfk::log_line(level, message ? message : ""); }

void dfk_set_bundle_path(const char *path) noexcept {
  try {
    if (path != nullptr && *path != '\0') dfk::set_bundle_path(path);
  } catch (...) {
    // out of memory for the string: keep the fallback
  }
}

DfkStatus dfk_init(char *err, size_t err_size) noexcept {
  if (dfk::use_child_server()) return dfk::child::init(err, err_size);
  std::string why;
  const bool ok = dfk::ensure_python(why);
  copy_text(err, err_size, why);
  return ok ? DFK_OK : DFK_NO_PYTHON;
}

DfkStatus dfk_open_clip(const char *instance_id, const DfkClipInfo *info, const DfkSettings *settings,
                        const DfkCallbacks *cb, const char *persisted_key, char *key_out, size_t key_size,
                        char *err, size_t err_size) noexcept {
  if (dfk::use_child_server())
    return dfk::child::open_clip(instance_id, info, settings, cb, persisted_key, key_out, key_size, err, err_size);
  return call_server("open_clip", err, err_size, [&](py::module_ server) {
    py::dict clip;
    dfk::for_each_clip_fact(*info, [&](const char *name, const auto &value) { clip[name] = value; });
    Callables calls(cb);
    const py::object key = server.attr("open_clip")(instance_id ? instance_id : "", clip, settings_dict(settings),
                                                    calls.fetch, persisted_key ? persisted_key : "");
    copy_text(key_out, key_size, py::str(key).cast<std::string>());
  });
}

DfkStatus dfk_analyze(const char *key, int force, const DfkCallbacks *cb, char *err, size_t err_size) noexcept {
  if (dfk::use_child_server()) return dfk::child::analyze(key, force, cb, err, err_size);
  return call_server(force ? "reanalyze" : "analyze", err, err_size, [&](py::module_ server) {
    Callables calls(cb);
    server.attr(force ? "reanalyze" : "analyze")(key, calls.fetch, calls.progress, calls.cancel);
  });
}

DfkStatus dfk_render(const char *key, int index, const DfkSettings *settings, const DfkCallbacks *cb,
                     const DfkImage *dst, char *err, size_t err_size) noexcept {
  if (dfk::use_child_server()) return dfk::child::render(key, index, settings, cb, dst, err, err_size);
  return call_server("render", err, err_size, [&](py::module_ server) {
    py::object result;
    {
      Callables calls(cb);
      result = server.attr("render")(key, index, calls.fetch, settings_dict(settings), calls.progress, calls.cancel);
    }
    const auto frame = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(result);
    if (!frame || frame.ndim() != 3 || frame.shape(0) != dst->height || frame.shape(1) != dst->width ||
        frame.shape(2) < 1 || frame.shape(2) > 4) {
      throw std::runtime_error("server.render returned a frame that does not fit the output image");
    }
    const int channels = static_cast<int>(frame.shape(2));
    const float *data = frame.data();
    py::gil_scoped_release nogil;
    dfk::copy_out(data, channels, *dst);
  });
}

DfkStatus dfk_frames_needed(const char *key, const DfkClipInfo *info, int index, const DfkSettings *settings,
                            int *ranges, int capacity, int *count, char *err, size_t err_size) noexcept {
  if (dfk::use_child_server())
    return dfk::child::frames_needed(key, info, index, settings, ranges, capacity, count, err, err_size);
  return call_server("frames_needed", err, err_size, [&](py::module_ server) {
    py::object clip = py::none();
    if (info != nullptr) {
      py::dict facts;
      dfk::for_each_clip_fact(*info, [&](const char *name, const auto &value) { facts[name] = value; });
      clip = facts;
    }
    const py::list needed = server.attr("frames_needed")(key ? key : "", index, settings_dict(settings), clip);
    *count = static_cast<int>(needed.size());
    for (int i = 0; i < *count && i < capacity; ++i) {
      const py::sequence range = needed[i].cast<py::sequence>();
      ranges[2 * i] = range[0].cast<int>();
      ranges[2 * i + 1] = range[1].cast<int>();
    }
  });
}

DfkStatus dfk_status(const char *key, char *out, size_t out_size) noexcept {
  if (dfk::use_child_server()) return dfk::child::status(key, out, out_size);
  std::string text;
  const DfkStatus status = call_server("status", out, out_size, [&](py::module_ server) {
    text = py::str(server.attr("status")(key)).cast<std::string>();
  });
  if (status == DFK_OK) copy_text(out, out_size, text);
  return status;
}

DfkStatus dfk_close_instance(const char *instance_id, char *err, size_t err_size) noexcept {
  if (dfk::use_child_server()) return dfk::child::close_instance(instance_id, err, err_size);
  return call_server("close_instance", err, err_size,
                     [&](py::module_ server) { server.attr("close_instance")(instance_id ? instance_id : ""); });
}

DfkStatus dfk_purge_caches(char *err, size_t err_size) noexcept {
  if (dfk::use_child_server()) return dfk::child::purge_caches(err, err_size);
  return call_server("purge_caches", err, err_size, [&](py::module_ server) { server.attr("purge_caches")(); });
}

}  // extern "C"
