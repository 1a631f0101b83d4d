// suites.cpp: the memory, multithread, message, progress and timeline suites.
#include "suites.h"

#include <algorithm>
#include <cstdarg>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"
#include "host.h"

namespace {

Effect *effectOf(const void *handle) {
  return isLiveEffect(handle) ? static_cast<Effect *>(const_cast<void *>(handle)) : nullptr;
}

int indexOf(const void *handle) {
  Effect *e = effectOf(handle);
  return e ? e->index : -1;
}

// ------------------------------------------------------------------ memory and multithread suites

const OfxMemorySuiteV1 kMemorySuite = {
    [](void *, size_t n, void **data) {
      if (!data) return kOfxStatErrBadHandle;
      *data = std::malloc(n ? n : 1);
      return *data ? kOfxStatOK : kOfxStatErrMemory;
    },
    [](void *data) {
      std::free(data);
      return kOfxStatOK;
    },
};

thread_local unsigned int threadIndex = 0;
thread_local bool spawnedThread = false;

}  // namespace

struct OfxMutex {
  std::recursive_mutex mutex;
};

namespace {

OfxStatus multiThread(OfxThreadFunctionV1 func, unsigned int n, void *arg) {
  if (!func) return kOfxStatErrBadHandle;
  if (n <= 1) {
    func(0, 1, arg);
    return kOfxStatOK;
  }
  std::vector<std::thread> threads;
  // Spawned threads work inside the caller's action (e.g. Render): they inherit its context.
  std::string action = currentAction(), token = currentActionToken();
  RenderContext *context = renderContext();
  for (unsigned int i = 0; i < n; ++i)
    threads.emplace_back([=] {
      threadIndex = i;
      spawnedThread = true;
      currentAction() = action;
      currentActionToken() = token;
      renderContext() = context;
      func(i, n, arg);
    });
  for (auto &t : threads) t.join();
  return kOfxStatOK;
}

const OfxMultiThreadSuiteV1 kMultiThreadSuite = {
    multiThread,
    [](unsigned int *n) {
      if (!n) return kOfxStatErrBadHandle;
      *n = std::max(1u, std::thread::hardware_concurrency());
      return kOfxStatOK;
    },
    [](unsigned int *i) {
      if (!i) return kOfxStatErrBadHandle;
      *i = threadIndex;
      return kOfxStatOK;
    },
    []() { return spawnedThread ? 1 : 0; },
    [](OfxMutexHandle *m, int lockCount) {
      if (!m) return kOfxStatErrBadHandle;
      *m = new OfxMutex;
      for (int i = 0; i < lockCount; ++i) (*m)->mutex.lock();
      return kOfxStatOK;
    },
    [](const OfxMutexHandle m) {
      delete m;
      return kOfxStatOK;
    },
    [](const OfxMutexHandle m) {
      if (!m) return kOfxStatErrBadHandle;
      m->mutex.lock();
      return kOfxStatOK;
    },
    [](const OfxMutexHandle m) {
      if (!m) return kOfxStatErrBadHandle;
      m->mutex.unlock();
      return kOfxStatOK;
    },
    [](const OfxMutexHandle m) {
      if (!m) return kOfxStatErrBadHandle;
      return m->mutex.try_lock() ? kOfxStatOK : kOfxStatFailed;
    },
};

// ------------------------------------------------------------------ message suites

std::string format(const char *fmt, va_list ap) {
  if (!fmt) return "";
  char buf[2048];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  return buf;
}

OfxStatus message(void *handle, const char *type, const char *id, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string text = format(fmt, ap);
  va_end(ap);
  emit("message", {{"instance", json(indexOf(handle))}, {"type", json(type)}, {"id", json(id)}, {"text", json(text)},
                   {"action", json(currentAction())}});
  bool question = type && std::string(type) == kOfxMessageQuestion;
  return question ? kOfxStatReplyDefault : kOfxStatOK;
}

OfxStatus setPersistentMessage(void *handle, const char *type, const char *id, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string text = format(fmt, ap);
  va_end(ap);
  if (!effectOf(handle)) return kOfxStatErrBadHandle;
  emit("persistent-message",
       {{"instance", json(indexOf(handle))}, {"type", json(type)}, {"id", json(id)}, {"text", json(text)}});
  return kOfxStatOK;
}

const OfxMessageSuiteV2 kMessageSuite = {
    message,
    setPersistentMessage,
    [](void *handle) {
      if (!effectOf(handle)) return kOfxStatErrBadHandle;
      emit("clear-persistent-message", {{"instance", json(indexOf(handle))}});
      return kOfxStatOK;
    },
};

// ------------------------------------------------------------------ progress and timeline suites

OfxStatus progressStart(void *handle, const char *label) {
  if (!effectOf(handle)) return kOfxStatErrBadHandle;
  emit("progress", {{"instance", json(indexOf(handle))}, {"what", json("start")}, {"label", json(label)}});
  return kOfxStatOK;
}

OfxStatus progressUpdate(void *handle, double value) {
  if (!effectOf(handle)) return kOfxStatErrBadHandle;
  bool cancel = host().cancel.trigger();
  emit("progress", {{"instance", json(indexOf(handle))}, {"what", json("update")}, {"value", json(value)},
                    {"cancel", json(cancel ? 1 : 0)}});
  return cancel ? kOfxStatReplyNo : host().options.progressFails ? kOfxStatFailed : kOfxStatOK;
}

OfxStatus progressEnd(void *handle) {
  if (!effectOf(handle)) return kOfxStatErrBadHandle;
  emit("progress", {{"instance", json(indexOf(handle))}, {"what", json("end")}});
  return kOfxStatOK;
}

const OfxProgressSuiteV1 kProgressSuiteV1 = {progressStart, progressUpdate, progressEnd};
const OfxProgressSuiteV2 kProgressSuiteV2 = {
    [](void *handle, const char *msg, const char *) { return progressStart(handle, msg); }, progressUpdate, progressEnd};

const OfxTimeLineSuiteV1 kTimeLineSuite = {
    [](void *, double *time) {
      if (!time) return kOfxStatErrBadHandle;
      *time = renderContext() ? renderContext()->time : double(host().options.firstFrame);
      return kOfxStatOK;
    },
    [](void *, double) { return kOfxStatOK; },
    [](void *, double *first, double *last) {
      if (!first || !last) return kOfxStatErrBadHandle;
      *first = host().options.firstFrame;
      *last = *first + host().video.frames - 1;
      return kOfxStatOK;
    },
};

}  // namespace

const OfxMemorySuiteV1 *memorySuite() { return &kMemorySuite; }
const OfxMultiThreadSuiteV1 *multiThreadSuite() { return &kMultiThreadSuite; }
const OfxMessageSuiteV2 *messageSuite() { return &kMessageSuite; }
const OfxProgressSuiteV1 *progressSuiteV1() { return &kProgressSuiteV1; }
const OfxProgressSuiteV2 *progressSuiteV2() { return &kProgressSuiteV2; }
const OfxTimeLineSuiteV1 *timeLineSuite() { return &kTimeLineSuite; }
