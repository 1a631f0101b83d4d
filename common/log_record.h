// log_record.h: one line of the plugin's log (deflicker-ofx.log), shared by the loader
// (plugin/loader.cpp) and the bridge's runtime (ofx_bridge/runtime.cpp) so both write the same
// format. Header-only, no iostreams (the loader stays small).
#pragma once

#ifdef _WIN32
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#include <process.h>
#else
#include <dlfcn.h>
#include <unistd.h>
#endif

#include <ctime>
#include <string>

namespace dfk {

/** This process's id. */
inline int process_id() noexcept {
#ifdef _WIN32
  return _getpid();
#else
  return static_cast<int>(getpid());
#endif
}

/** "YYYY-mm-dd HH:MM:SS [LEVEL] pid N ofx: message" (UTC, no newline). */
inline std::string log_record(const char *level, const std::string &message) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
#ifdef _WIN32
  gmtime_s(&tm, &now);
#else
  gmtime_r(&now, &tm);
#endif
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
  return std::string(stamp) + " [" + level + "] pid " + std::to_string(process_id()) + " ofx: " + message;
}

}  // namespace dfk
