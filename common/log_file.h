// log_file.h: where the plugin's log (deflicker-ofx.log) goes and how it is opened, shared by the
// loader (plugin/loader.cpp) and the bridge's runtime (ofx_bridge/runtime.cpp). Header-only, no
// iostreams or <filesystem> (the loader stays small).
//
// The log goes to the first of: $DEFLICKER_OFX_LOG, deflicker-ofx.log beside the plugin binary,
// deflicker-ofx.log in the temp folder and (POSIX) deflicker-ofx-UID.log there, that can be opened
// safely. The temp folder is shared by every user of the machine, so a name there may be another
// user's symbolic link to one of our files (which appending would damage) or another user's file:
// a link is never followed (O_NOFOLLOW), and only a regular file that is ours and has no second name
// (a hard link) is written; a new one is private (0600). Passing over a candidate for such a reason
// (not for a plain "permission denied") is the first, WARNING line in the log that is used.
#pragma once

#include "log_record.h"  // and the platform headers

#ifndef _WIN32
#include <fcntl.h>
#include <sys/stat.h>
#endif

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace dfk {

#ifdef _WIN32
using NativePath = std::wstring;  // what the OS's file functions take
#define DFK_NATIVE(text) L"" text
constexpr const wchar_t *kNativeSeparator = L"\\";

/** A native path as UTF-8 (for messages). */
inline std::string native_utf8(const NativePath &path) {
  const int n = WideCharToMultiByte(CP_UTF8, 0, path.data(), static_cast<int>(path.size()), nullptr, 0, nullptr, nullptr);
  std::string out(n > 0 ? n : 0, '\0');
  if (n > 0) WideCharToMultiByte(CP_UTF8, 0, path.data(), static_cast<int>(path.size()), out.data(), n, nullptr, nullptr);
  return out;
}
inline const wchar_t *log_env() { return _wgetenv(L"DEFLICKER_OFX_LOG"); }
/** The temp folder, without the trailing '\'. */
inline NativePath temp_dir() {
  wchar_t buf[MAX_PATH + 1];
  const DWORD n = GetTempPathW(MAX_PATH + 1, buf);
  return n > 1 && n <= MAX_PATH ? NativePath(buf, n - 1) : NativePath(L"C:\\Windows\\Temp");
}
#else
using NativePath = std::string;
#define DFK_NATIVE(text) text
constexpr const char *kNativeSeparator = "/";

inline std::string native_utf8(const NativePath &path) { return path; }
inline const char *log_env() { return std::getenv("DEFLICKER_OFX_LOG"); }
/** The temp folder, as std::filesystem::temp_directory_path finds it. */
inline NativePath temp_dir() {
  for (const char *name : {"TMPDIR", "TMP", "TEMP", "TEMPDIR"})
    if (const char *dir = std::getenv(name); dir != nullptr && *dir != '\0') return dir;
  return "/tmp";
}
#endif

/** Closes a log stream. */
struct LogCloser {
  void operator()(std::FILE *file) const noexcept { std::fclose(file); }
};
using LogStream = std::unique_ptr<std::FILE, LogCloser>;

/** Where the log may go, best first (see the top of this file); `binary_dir` empty if unknown. */
inline std::vector<NativePath> log_candidates(const NativePath &binary_dir) {
  std::vector<NativePath> out;
  if (const auto *env = log_env(); env != nullptr && *env) out.emplace_back(env);
  const NativePath name = DFK_NATIVE("deflicker-ofx.log");
  if (!binary_dir.empty()) out.push_back(binary_dir + kNativeSeparator + name);
  out.push_back(temp_dir() + kNativeSeparator + name);
#ifndef _WIN32  // Windows' temp folder is the user's own
  out.push_back(temp_dir() + "/deflicker-ofx-" + std::to_string(geteuid()) + ".log");
#endif
  return out;
}

/** `path` opened to append to, or null with `why` set when it is unsafe (see the top of this file)
 * and left empty when it merely cannot be written (no permission, no such folder). */
inline LogStream open_log(const NativePath &path, std::string &why) {
  why.clear();
#ifdef _WIN32
  const DWORD attributes = GetFileAttributesW(path.c_str());
  if (attributes != INVALID_FILE_ATTRIBUTES && (attributes & (FILE_ATTRIBUTE_REPARSE_POINT | FILE_ATTRIBUTE_DIRECTORY))) {
    why = "a link or folder: not followed";
    return nullptr;
  }
  return LogStream(_wfopen(path.c_str(), L"a"));
#else
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int error = errno;
    if (error == ELOOP || error == EMLINK) why = "a symbolic link: not followed";  // EMLINK: the BSDs' O_NOFOLLOW
    else if (error == ENXIO) why = "not a regular file";  // a FIFO nobody reads
    else if (error != EACCES && error != EPERM && error != EROFS && error != ENOENT && error != ENOTDIR)
      why = std::string("not writable (") + std::strerror(error) + ")";
    return nullptr;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) why = "not a regular file";
  else if (st.st_uid != geteuid()) why = "uid " + std::to_string(st.st_uid) + "'s file, not ours";
  else if (st.st_nlink != 1) why = "a file with a second name (a hard link)";
  std::FILE *file = why.empty() ? fdopen(fd, "a") : nullptr;
  if (file == nullptr) close(fd);
  return LogStream(file);
#endif
}

/** A log opened for writing (null if no candidate could be) and its path. */
struct OpenLog {
  LogStream stream;
  NativePath path;
};

/** The first of `candidates` that open_log accepts, opened; unsafe ones passed over are its first line. */
inline OpenLog open_first_log(const std::vector<NativePath> &candidates) noexcept {
  OpenLog out;
  try {
    std::string refused;
    for (const NativePath &path : candidates) {
      std::string why;
      out.stream = open_log(path, why);
      if (out.stream) {
        out.path = path;
        break;
      }
      if (!why.empty()) refused += (refused.empty() ? "" : "; ") + native_utf8(path) + " is " + why;
    }
    if (out.stream && !refused.empty())
      std::fprintf(out.stream.get(), "%s\n", log_record("WARNING", "not logging to " + refused).c_str());
  } catch (...) {
    // Logging must never take the host down.
  }
  return out;
}

}  // namespace dfk
