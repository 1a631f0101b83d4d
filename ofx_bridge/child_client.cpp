// child_client.cpp: the bridge calls over a child-process model server (see child_client.h).
//
// One child per plugin process, started on first use: Contents/<arch>/deflicker_server with the
// socket on fd 3 and the shared frame file on fd 4. Calls are serialized (one request in flight);
// while the plugin waits for the answer it serves the child's questions on the calling thread:
// `fetch` (the host's source frame is copied, top-down and packed, into the frame file), `progress`
// and `cancel`. A rendered frame comes back through the same file, a memfd on Linux (an unlinked
// temporary file elsewhere), so nothing is left behind whatever happens.
// Quick queries (status, frames_needed, close_instance, purge_caches) wait for a call in progress
// kQueryWait at most: a long analysis never freezes the host's UI thread. A query that cannot wait
// fails with "busy" (the plugin keeps its defaults); a close waits in a queue for the next call.
// A child that stops (killed, crashed, bad message) is reaped and reported on the call in flight;
// one silent for kStopGrace while the host asks to stop is killed first. The next call starts
// another child, up to kMaxStarts per process. SIGPIPE is never raised (MSG_NOSIGNAL/SO_NOSIGPIPE).
#include "child_client.h"

#include "call_fields_gen.h"  // generated (deflicker.server.plugin_header)
#include "child_protocol.h"
#include "copy_out.h"
#include "runtime.h"

#ifndef _WIN32
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#ifdef __APPLE__
#include <crt_externs.h>  // a dylib cannot reach `environ` directly
#define environ (*_NSGetEnviron())
#else
extern char **environ;
#endif
#endif

namespace dfk {
namespace child {

#ifdef _WIN32

namespace {
DfkStatus unavailable(char *err, size_t err_size) noexcept {
  copy_text(err, err_size, "RuntimeError: the child-process server is not available on Windows");
  return DFK_NO_PYTHON;
}
}  // namespace

DfkStatus init(char *err, size_t err_size) noexcept { return unavailable(err, err_size); }
DfkStatus open_clip(const char *, const DfkClipInfo *, const DfkSettings *, const DfkCallbacks *, const char *, char *,
                    size_t, char *err, size_t err_size) noexcept { return unavailable(err, err_size); }
DfkStatus analyze(const char *, int, const DfkCallbacks *, char *err, size_t err_size) noexcept { return unavailable(err, err_size); }
DfkStatus render(const char *, int, const DfkSettings *, const DfkCallbacks *, const DfkImage *, char *err,
                 size_t err_size) noexcept { return unavailable(err, err_size); }
DfkStatus frames_needed(const char *, const DfkClipInfo *, int, const DfkSettings *, int *, int, int *, char *err,
                        size_t err_size) noexcept {
  return unavailable(err, err_size);
}
DfkStatus status(const char *, char *out, size_t out_size) noexcept { return unavailable(out, out_size); }
DfkStatus close_instance(const char *, char *err, size_t err_size) noexcept { return unavailable(err, err_size); }
DfkStatus purge_caches(char *err, size_t err_size) noexcept { return unavailable(err, err_size); }

#else

namespace {

constexpr int kMaxStarts = 4;          // the first child and three restarts
constexpr int kChildSocketFd = 3;      // what deflicker_server expects
constexpr int kChildFramesFd = 4;
constexpr auto kQueryWait = std::chrono::milliseconds(250);
constexpr auto kStopGrace = std::chrono::seconds(10);  // a child silent this long after "stop" is killed
constexpr int kPollMs = 250;

/** A failure of the call in flight: its status and its "<Class>: <message>" text. */
struct CallError {
  DfkStatus status;
  std::string message;
};

/** "signal 9: Killed" / "exit code 3" of a reaped child. */
std::string describe_exit(int wstatus) {
  if (WIFSIGNALED(wstatus)) {
    const int sig = WTERMSIG(wstatus);
    const char *name = strsignal(sig);
    return "signal " + std::to_string(sig) + (name ? std::string(": ") + name : std::string());
  }
  if (WIFEXITED(wstatus)) return "exit code " + std::to_string(WEXITSTATUS(wstatus));
  return "unknown reason";
}

/** The child process, its socket and the shared frame file. Used under g_mutex only. */
class ChildServer {
 public:
  /** Send the queued closes, then run one request to its answer, serving the child's questions
   * through `cb` meanwhile. Without `start_child`, a request finding no child running answers an
   * empty "idle" message (the child holds nothing to ask about). "flush" only sends the closes. */
  ChildMessage call(const ChildMessage &request, const DfkCallbacks *cb, size_t frame_bytes, bool start_child) {
    for (const std::string &id : take_closes()) {
      if (pid_ < 0) break;  // a new child holds no instance
      ChildMessage close;
      close.op = "close_instance";
      try {
        exchange(close.set("instance_id", id), nullptr);
      } catch (const CallError &e) {  // the server's own failure; a stopped child fails the call below
        log_line(2, "close_instance " + id + " failed: " + e.message);
      }
    }
    if (pid_ < 0 && !start_child) return ChildMessage{"idle", {}};
    if (pid_ < 0) start();
    if (frame_bytes > 0) ensure_frames(frame_bytes);
    return request.op == "flush" ? ChildMessage{"idle", {}} : exchange(request, cb);
  }

  /** Queue an instance's close for the next call (any thread). */
  static void queue_close(const std::string &instance_id) {
    const std::lock_guard<std::mutex> lock(closes_mutex_);
    closes_.push_back(instance_id);
  }

  /** The shared frame file, mapped in this process (valid until the next call). */
  const void *frames() const { return map_; }

 private:
  static std::vector<std::string> take_closes() {
    std::vector<std::string> taken;
    const std::lock_guard<std::mutex> lock(closes_mutex_);
    taken.swap(closes_);
    return taken;
  }

  ChildMessage exchange(const ChildMessage &request, const DfkCallbacks *cb) {
    if (!send_message(socket_, request)) stopped("while sending " + request.op);
    for (;;) {
      ChildMessage message;
      wait_for_message(request.op, cb);
      if (!receive_message(socket_, message)) stopped("during " + request.op);
      if (message.op == "result") {
        const auto status = static_cast<DfkStatus>(message.get_int("status", DFK_ERROR));
        if (status != DFK_OK) throw CallError{status, message.get("error", "RuntimeError: unknown server error")};
        return message;
      }
      ChildMessage answer = serve(message, cb);
      if (!answer.op.empty() && !send_message(socket_, answer)) stopped("while answering " + message.op);
    }
  }

  /** Wait until the child says something (or its socket closes). While the host asks to stop (its
   * cancel callback; always, for a query without callbacks) the child has kStopGrace to answer,
   * then it is killed: a hung child never hangs the host. */
  void wait_for_message(const std::string &op, const DfkCallbacks *cb) {
    bool stopping = false;
    std::chrono::steady_clock::time_point stop_since;
    for (;;) {
      pollfd ready{socket_, POLLIN, 0};
      const int rc = poll(&ready, 1, kPollMs);
      if (rc > 0 || (rc < 0 && errno != EINTR)) return;  // a message, end of file or an error: receive tells
      const bool stop = cb == nullptr || (cb->cancel != nullptr && cb->cancel(cb->ctx) != 0);
      if (!stop || !stopping) {
        stopping = stop;
        stop_since = std::chrono::steady_clock::now();
      } else if (std::chrono::steady_clock::now() - stop_since > kStopGrace) {
        kill_child("during " + op + " (it did not answer within " + std::to_string(kStopGrace.count()) + " s" +
                   (cb == nullptr ? ")" : " of the host's request to stop)"));
      }
    }
  }

  ChildMessage serve(const ChildMessage &question, const DfkCallbacks *cb) {
    ChildMessage answer;
    if (question.op == "fetch") {
      answer.op = "frame";
      fetch(static_cast<int>(question.get_int("index", -1)), cb, answer);
    } else if (question.op == "progress") {
      if (cb != nullptr && cb->progress != nullptr)
        cb->progress(cb->ctx, std::strtod(question.get("fraction", "0").c_str(), nullptr), question.get("label").c_str());
    } else if (question.op == "cancel") {
      answer.op = "cancel";
      answer.set("answer", static_cast<long long>(cb != nullptr && cb->cancel != nullptr && cb->cancel(cb->ctx) != 0));
    } else {
      kill_child("after it sent an unknown message '" + question.op + "'");
    }
    return answer;
  }

  /** Source frame `index` from the host into the frame file, top-down and packed. */
  void fetch(int index, const DfkCallbacks *cb, ChildMessage &answer) {
    const std::string frame = "source frame " + std::to_string(index);
    if (cb == nullptr || cb->fetch == nullptr) {
      answer.set("status", 1LL).set("error", "no frame source");
      return;
    }
    DfkImage img{};
    void *token = nullptr;
    if (cb->fetch(cb->ctx, index, &img, &token) != 0) {
      answer.set("status", 1LL).set("error", frame + " is not available from the host");
      return;
    }
    struct Release {
      const DfkCallbacks *cb;
      void *token;
      ~Release() {
        if (cb->release != nullptr) cb->release(cb->ctx, token);
      }
    } release{cb, token};
    if (img.data == nullptr || img.width <= 0 || img.height <= 0 || (img.channels != 3 && img.channels != 4) ||
        (img.bytes_per_channel != 1 && img.bytes_per_channel != 2 && img.bytes_per_channel != 4)) {
      answer.set("status", 1LL).set("error", frame + " has an unsupported layout");
      return;
    }
    const size_t row = static_cast<size_t>(img.width) * img.channels * img.bytes_per_channel;
    try {
      ensure_frames(row * img.height);
    } catch (const CallError &e) {
      answer.set("status", 1LL).set("error", e.message);
      return;
    }
    for (int y = 0; y < img.height; ++y)
      std::memcpy(static_cast<char *>(map_) + row * y, static_cast<const char *>(img.data) + y * img.row_bytes, row);
    answer.set("status", 0LL)
        .set("width", static_cast<long long>(img.width))
        .set("height", static_cast<long long>(img.height))
        .set("channels", static_cast<long long>(img.channels))
        .set("bytes_per_channel", static_cast<long long>(img.bytes_per_channel));
  }

  /** Grow the frame file (and this process's mapping) to at least `bytes`. */
  void ensure_frames(size_t bytes) {
    if (bytes <= map_size_) return;
#ifdef __linux__
    // Reserve the pages now: a short file system fails here instead of with SIGBUS on first write.
    const int rc = posix_fallocate(frames_fd_, 0, static_cast<off_t>(bytes));
#else
    const int rc = ftruncate(frames_fd_, static_cast<off_t>(bytes)) == 0 ? 0 : errno;
#endif
    if (rc != 0)
      throw CallError{DFK_ERROR, std::string("MemoryError: cannot grow the shared frame file: ") + std::strerror(rc)};
    unmap();
    void *map = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, frames_fd_, 0);
    if (map == MAP_FAILED)
      throw CallError{DFK_ERROR, std::string("MemoryError: cannot map the shared frame file: ") + std::strerror(errno)};
    map_ = map;
    map_size_ = bytes;
  }

  void start() {
    if (starts_ >= kMaxStarts)
      throw CallError{DFK_ERROR, "RuntimeError: the analysis server failed " + std::to_string(starts_) +
                                     " times (last: " + last_stop_ + "); save your work and restart the host"};
    ++starts_;
    const std::string program = binary_directory() + "/deflicker_server";
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0)
      throw CallError{DFK_NO_PYTHON, std::string("OSError: socketpair: ") + std::strerror(errno)};
    socket_ = fcntl(pair[0], F_DUPFD_CLOEXEC, 10);  // >= 10: never one of the child's fixed fds
    const int theirs = fcntl(pair[1], F_DUPFD_CLOEXEC, 10);
    ::close(pair[0]);
    ::close(pair[1]);
#ifdef SO_NOSIGPIPE
    const int on = 1;
    setsockopt(socket_, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on);
#endif
    frames_fd_ = open_frame_file();
    const std::string generation = std::to_string(starts_);
    const std::string bundle = bundle_path();
    std::vector<std::string> args = {program, "--bundle", bundle, "--generation", generation};
    std::vector<char *> argv;
    for (std::string &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, theirs, kChildSocketFd);
    posix_spawn_file_actions_adddup2(&actions, frames_fd_, kChildFramesFd);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(theirs);
    if (rc != 0 || frames_fd_ < 0) {
      close_all();
      last_stop_ = "cannot start " + program + ": " + std::strerror(rc ? rc : errno) +
                   (rc == ENOENT ? " (the plugin bundle is incomplete: reinstall it)" : "");
      throw CallError{DFK_NO_PYTHON, "OSError: " + last_stop_};
    }
    pid_ = pid;
    ChildMessage ready;
    if (!receive_message(socket_, ready)) stopped("while starting");
    if (ready.get_int("status", DFK_ERROR) != DFK_OK) {
      const std::string why = ready.get("error", "RuntimeError: the analysis server could not start");
      last_stop_ = why;
      reap();
      throw CallError{DFK_NO_PYTHON, why};
    }
    log_line(1, "started the analysis server, pid " + std::to_string(pid_) + " (start " + generation + "): " + program +
                    "; " + ready.get("python"));
  }

  /** An anonymous memory file (Linux) or an unlinked temporary file for the frames: nothing stays
   * behind when the process dies. */
  static int open_frame_file() {
#ifdef __linux__
    const int memfd = static_cast<int>(memfd_create("deflicker-frames", MFD_CLOEXEC));
    if (memfd >= 0) {
      const int moved = fcntl(memfd, F_DUPFD_CLOEXEC, 10);
      ::close(memfd);
      return moved;
    }
#endif
    const char *tmp = std::getenv("TMPDIR");
    std::string name = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/deflicker-frames-XXXXXX";
    const int fd = mkstemp(name.data());
    if (fd < 0) return -1;
    ::unlink(name.c_str());
    const int moved = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    ::close(fd);
    return moved;
  }

  /** The child is gone: reap it, forget it, fail the call in flight with why (run() logs it). */
  [[noreturn]] void stopped(const std::string &when) {
    const std::string how = reap();
    last_stop_ = how;
    throw CallError{DFK_ERROR, "the analysis server stopped (" + how + ") " + when +
                                   "; the next render starts it again (details in deflicker-ofx.log)"};
  }

  /** Kill a child that misbehaves; `when` says when and why ("during render (it did not ...)"). */
  [[noreturn]] void kill_child(const std::string &when) {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
    stopped(when);
  }

  /** Close our ends, wait (2 s at most, then SIGKILL) for the child to exit; how it ended. */
  std::string reap() {
    close_all();
    if (pid_ <= 0) return "not started";
    int wstatus = 0;
    pid_t done = 0;
    for (int i = 0; i < 40 && (done = waitpid(pid_, &wstatus, WNOHANG)) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (done == 0) {
      ::kill(pid_, SIGKILL);
      done = waitpid(pid_, &wstatus, 0);
    }
    pid_ = -1;
    return done > 0 ? describe_exit(wstatus) : "already reaped by the host";
  }

  void unmap() {
    if (map_ != nullptr) munmap(map_, map_size_);
    map_ = nullptr;
    map_size_ = 0;
  }

  void close_all() {
    unmap();
    if (socket_ >= 0) ::close(socket_);
    if (frames_fd_ >= 0) ::close(frames_fd_);
    socket_ = frames_fd_ = -1;
  }

  pid_t pid_ = -1;
  int socket_ = -1;
  int frames_fd_ = -1;
  void *map_ = nullptr;
  size_t map_size_ = 0;
  int starts_ = 0;
  std::string last_stop_;
  static inline std::mutex closes_mutex_;
  static inline std::vector<std::string> closes_;  // under closes_mutex_
};

std::timed_mutex g_mutex;
ChildServer g_server;  // under g_mutex

/** How long a bridge call waits for the one in progress: calls as long as it takes, queries kQueryWait. */
enum class Wait { call, query };

/** Run `request` and hand its answer to `done` (under the lock); failures become a status and text. */
template <class Done>
DfkStatus run(const char *what, const ChildMessage &request, const DfkCallbacks *cb, size_t frame_bytes, Wait wait,
              char *err, size_t err_size, Done &&done) noexcept {
  std::string message;
  DfkStatus status = DFK_OK;
  try {
    std::unique_lock<std::timed_mutex> lock(g_mutex, std::defer_lock);
    if (wait == Wait::call) {
      lock.lock();
    } else if (!lock.try_lock_for(kQueryWait)) {
      copy_text(err, err_size, "RuntimeError: the analysis server is busy with another call");
      log_line(0, std::string(what) + ": the analysis server is busy with another call");
      return DFK_ERROR;
    }
    done(g_server.call(request, cb, frame_bytes, wait == Wait::call));
  } catch (const CallError &e) {
    status = e.status;
    message = e.message;
  } catch (const std::exception &e) {
    status = DFK_ERROR;
    message = std::string("RuntimeError: ") + e.what();
  } catch (...) {
    status = DFK_ERROR;
    message = "RuntimeError: unknown C++ exception";
  }
  if (status != DFK_OK) log_line(status == DFK_CANCELLED ? 1 : 3, std::string(what) + " failed: " + message);
  copy_text(err, err_size, message);
  return status;
}

ChildMessage request(const char *op, const DfkCallbacks *cb = nullptr) {
  ChildMessage m;
  m.op = op;
  m.set("has_progress", static_cast<long long>(cb != nullptr && cb->progress != nullptr));
  m.set("has_cancel", static_cast<long long>(cb != nullptr && cb->cancel != nullptr));
  return m;
}

/** Sets `prefix` + name for each field a for_each_* visit hands over (flags as 0/1). */
struct SetFields {
  ChildMessage &m;
  const char *prefix;
  void operator()(const char *name, bool value) const { m.set(prefix + std::string(name), static_cast<long long>(value)); }
  template <class T>
  void operator()(const char *name, const T &value) const { m.set(prefix + std::string(name), value); }
};

void ignore(const ChildMessage &) {}

}  // namespace

DfkStatus init(char *err, size_t err_size) noexcept {
  return run("init", request("ping"), nullptr, 0, Wait::call, err, err_size, ignore);
}

DfkStatus open_clip(const char *instance_id, const DfkClipInfo *info, const DfkSettings *settings,
                    const DfkCallbacks *cb, const char *persisted_key, char *key_out, size_t key_size, char *err,
                    size_t err_size) noexcept {
  ChildMessage m = request("open_clip", cb);
  m.set("instance_id", std::string(instance_id ? instance_id : ""));
  m.set("persisted_key", std::string(persisted_key ? persisted_key : ""));
  dfk::for_each_clip_fact(*info, SetFields{m, "clip."});
  dfk::for_each_setting(settings, SetFields{m, "settings."});
  return run("open_clip", m, cb, 0, Wait::call, err, err_size,
             [&](const ChildMessage &answer) { copy_text(key_out, key_size, answer.get("key")); });
}

DfkStatus analyze(const char *key, int force, const DfkCallbacks *cb, char *err, size_t err_size) noexcept {
  ChildMessage m = request(force ? "reanalyze" : "analyze", cb);
  m.set("key", std::string(key ? key : ""));
  return run(m.op.c_str(), m, cb, 0, Wait::call, err, err_size, ignore);
}

DfkStatus render(const char *key, int index, const DfkSettings *settings, const DfkCallbacks *cb, const DfkImage *dst,
                 char *err, size_t err_size) noexcept {
  ChildMessage m = request("render", cb);
  m.set("key", std::string(key ? key : "")).set("index", static_cast<long long>(index));
  dfk::for_each_setting(settings, SetFields{m, "settings."});
  const size_t room = static_cast<size_t>(dst->width) * dst->height * 4 * sizeof(float);  // float RGBA at most
  return run("render", m, cb, room, Wait::call, err, err_size, [&](const ChildMessage &answer) {
    const long long channels = answer.get_int("channels");
    if (answer.get_int("height") != dst->height || answer.get_int("width") != dst->width || channels < 1 || channels > 4)
      throw std::runtime_error("server.render returned a frame that does not fit the output image");
    copy_out(static_cast<const float *>(g_server.frames()), static_cast<int>(channels), *dst);
  });
}

DfkStatus frames_needed(const char *key, const DfkClipInfo *info, int index, const DfkSettings *settings, int *ranges,
                        int capacity, int *count, char *err, size_t err_size) noexcept {
  ChildMessage m = request("frames_needed");
  m.set("key", std::string(key ? key : "")).set("index", static_cast<long long>(index));
  if (info != nullptr) dfk::for_each_clip_fact(*info, SetFields{m, "clip."});
  dfk::for_each_setting(settings, SetFields{m, "settings."});
  return run("frames_needed", m, nullptr, 0, Wait::query, err, err_size, [&](const ChildMessage &answer) {
    std::vector<int> bounds;  // first, last, first, last, ...
    const std::string list = answer.get("ranges");
    for (size_t at = 0; at < list.size();) {
      const size_t comma = std::min(list.find(',', at), list.size());
      bounds.push_back(std::stoi(list.substr(at, comma - at)));
      at = comma + 1;
    }
    *count = static_cast<int>(bounds.size() / 2);
    for (int i = 0; i < 2 * *count && i < 2 * capacity; ++i) ranges[i] = bounds[i];
  });
}

DfkStatus status(const char *key, char *out, size_t out_size) noexcept {
  ChildMessage m = request("status");
  m.set("key", std::string(key ? key : ""));
  std::string text;
  const DfkStatus result = run("status", m, nullptr, 0, Wait::query, out, out_size,
                               [&](const ChildMessage &answer) { text = answer.get("text", "not analysed"); });
  if (result == DFK_OK) copy_text(out, out_size, text);
  return result;
}

DfkStatus close_instance(const char *instance_id, char *err, size_t err_size) noexcept {
  ChildServer::queue_close(instance_id ? instance_id : "");
  return run("close_instance", request("flush"), nullptr, 0, Wait::query, err, err_size, ignore);
}

DfkStatus purge_caches(char *err, size_t err_size) noexcept {
  return run("purge_caches", request("purge_caches"), nullptr, 0, Wait::query, err, err_size, ignore);
}

#endif  // _WIN32

}  // namespace child
}  // namespace dfk
