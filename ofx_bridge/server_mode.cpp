// server_mode.cpp: choose the embedded or the child-process model server (see server_mode.h).
//
// A host that already runs its own torch (Nuke 14+ ships libtorch) or a Python of another version
// would share one process with the bundle's: two libtorch/libc10 copies, or Py_* symbols bound to
// the wrong libpython, crash at import. Both show in the process's loaded libraries, which are
// checked before Python is ever started. A host may load its torch only later (when one of its
// own ML nodes first runs), so a torch shipped beside the host's executable counts too.
#include "server_mode.h"

#include "runtime.h"

#include <patchlevel.h>  // PY_MAJOR_VERSION / PY_MINOR_VERSION of the libpython the core links

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#if defined(__APPLE__)
#include <mach-o/dyld.h>
#include <climits>
#elif !defined(_WIN32)
#include <link.h>
#endif

namespace dfk {
namespace {

/** Paths of the shared libraries loaded in this process (empty where not implemented: Windows). */
std::vector<std::string> loaded_libraries() {
  std::vector<std::string> names;
#if defined(__APPLE__)
  const uint32_t count = _dyld_image_count();
  for (uint32_t i = 0; i < count; ++i)
    if (const char *name = _dyld_get_image_name(i)) names.emplace_back(name);
#elif !defined(_WIN32)
  dl_iterate_phdr(
      [](struct dl_phdr_info *info, size_t, void *data) {
        if (info->dlpi_name != nullptr && *info->dlpi_name != '\0')
          static_cast<std::vector<std::string> *>(data)->emplace_back(info->dlpi_name);
        return 0;
      },
      &names);
#endif
  return names;
}

/** The host's executable, empty if unknown (Windows: not looked at). */
std::filesystem::path host_executable() {
  std::error_code ec;
#if defined(__APPLE__)
  char buf[PATH_MAX];
  uint32_t size = sizeof buf;
  if (_NSGetExecutablePath(buf, &size) != 0) return {};
  return std::filesystem::canonical(buf, ec);
#elif !defined(_WIN32)
  return std::filesystem::read_symlink("/proc/self/exe", ec);
#else
  return {};
#endif
}

bool is_torch_library(const std::string &name) { return name.rfind("libtorch", 0) == 0 || name.rfind("libc10", 0) == 0; }

/** A torch library shipped with the host (beside its executable or in lib/ there), "" if none. */
std::string host_shipped_torch() {
  const std::filesystem::path exe = host_executable();
  if (exe.empty()) return {};
  for (const std::filesystem::path &dir : {exe.parent_path(), exe.parent_path() / "lib"}) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      if (is_torch_library(it->path().filename().string())) return it->path().string();
  }
  return {};
}

/** "3.N" of a libpython path (libpython3.N.so..., Python.framework/Versions/3.N/Python), else "". */
std::string python_version_of(const std::string &path) {
  for (const char *marker : {"libpython", "Python.framework/Versions/"}) {
    const auto at = path.rfind(marker);
    if (at == std::string::npos) continue;
    const auto begin = at + std::char_traits<char>::length(marker);
    auto end = begin;
    while (end < path.size() && (std::isdigit(static_cast<unsigned char>(path[end])) || path[end] == '.')) ++end;
    std::string version = path.substr(begin, end - begin);
    while (!version.empty() && version.back() == '.') version.pop_back();
    if (version.find('.') != std::string::npos) return version;
  }
  return {};
}

std::string base_name(const std::string &path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool decide() {
  const char *env = std::getenv("DEFLICKER_SERVER");
  const std::string mode = env != nullptr ? env : "";
#ifdef _WIN32
  if (mode == "child")
    log_line(2, "DEFLICKER_SERVER=child: the child-process server is not available on Windows yet; using the embedded one");
  else
    log_line(1, "server mode: embedded (Windows: no loaded-library check and no child-process server yet)");
  return false;
#else
  if (mode == "embedded" || mode == "child") {
    log_line(1, "server mode: " + mode + " (DEFLICKER_SERVER=" + mode + ")");
    return mode == "child";
  }
  if (!mode.empty() && mode != "auto")
    log_line(2, "DEFLICKER_SERVER=" + mode + " is not embedded, child or auto: using auto");
  const std::string clash = embedding_clash();
  log_line(1, clash.empty() ? "server mode: embedded (auto: no other torch or Python in the host process)"
                            : "server mode: child (auto: " + clash + ")");
  return !clash.empty();
#endif
}

}  // namespace

std::string embedding_clash() {
  const std::string ours = std::to_string(PY_MAJOR_VERSION) + "." + std::to_string(PY_MINOR_VERSION);
  for (const std::string &path : loaded_libraries()) {
    const std::string name = base_name(path);
    if (is_torch_library(name)) return "the host process has " + name + " loaded (" + path + "): another torch";
    const std::string version = python_version_of(path);
    if (!version.empty() && version != ours)
      return "the host process has Python " + version + " loaded (" + path + "); the plugin's is " + ours;
  }
  const std::string shipped = host_shipped_torch();
  return shipped.empty() ? std::string() : "the host ships its own torch (" + shipped + "), which it may load later";
}

bool use_child_server() noexcept {
  static std::once_flag once;
  static bool child = false;
  try {
    std::call_once(once, [] { child = decide(); });
  } catch (...) {
    // decide() only fails on memory exhaustion: keep the embedded default
  }
  return child;
}

}  // namespace dfk
