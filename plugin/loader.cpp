// loader.cpp: Contents/<arch>/Deflicker.ofx, the binary the host loads. It has no Python
// dependency: it loads the core (DFK_CORE_FILE: the plugin, the bridge and the embedded Python)
// from its own folder by full path and forwards the OFX entry points to the core's dfk_core_*
// functions (plugin/core_api.h).
//
// Why: the core links libpython. On Windows pythonXY.dll lies beside the core, and Windows looks
// in a DLL's own folder for its dependencies only when that DLL is loaded by full path with
// LOAD_WITH_ALTERED_SEARCH_PATH, which many hosts do not do for plugins; this loader does it for
// the core. POSIX is the same code with dlopen(RTLD_NOW | RTLD_LOCAL): the core finds libpython
// through its rpath and promotes it to RTLD_GLOBAL itself (ofx_bridge/runtime.cpp).
//
// The core is loaded at the first entry point call (never from DllMain or a static initializer:
// the loader lock), once per process, and never unloaded: its interpreter and threads cannot be.
// If it cannot be loaded, OfxGetNumberOfPlugins returns 0 and one line with the system's reason
// goes to the plugin's log (where common/log_file.h says, as in ofx_bridge/runtime.cpp). Nothing
// here throws across the C ABI.
#include "core_api.h"
#include "log_file.h"  // and the platform headers

#ifdef __linux__
#include <link.h>  // ElfW
#include <sys/stat.h>
#include <cstring>
#endif

#include <cstdio>
#include <string>

#ifndef DFK_CORE_FILE
#error "DFK_CORE_FILE (the core's file name, e.g. \"deflicker_core.so\") is set by CMakeLists.txt"
#endif

namespace {

// Paths are native strings (UTF-16 on Windows), messages UTF-8. No iostreams or <filesystem>:
// with the static libstdc++ they would make the loader several times bigger.
#ifdef _WIN32
using Handle = HMODULE;
using Path = dfk::NativePath;
void unload(Handle h) { FreeLibrary(h); }
template <class Fn> Fn symbol(Handle h, const char *name) {
  return reinterpret_cast<Fn>(reinterpret_cast<void (*)()>(GetProcAddress(h, name)));
}
std::string utf8(const Path &path) { return dfk::native_utf8(path); }
/** GetLastError() as text (FormatMessage). */
std::string last_error() {
  const DWORD code = GetLastError();
  wchar_t *text = nullptr;
  FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
                 code, 0, reinterpret_cast<LPWSTR>(&text), 0, nullptr);
  Path message = text != nullptr ? text : L"";
  LocalFree(text);
  while (!message.empty() && (message.back() == L'\n' || message.back() == L'\r' || message.back() == L' '))
    message.pop_back();
  return utf8(message) + " (error " + std::to_string(code) + ")";
}
/** This binary's folder, empty if unknown. */
Path module_dir() {
  HMODULE self = nullptr;
  if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                          reinterpret_cast<LPCWSTR>(&module_dir), &self))
    return {};
  Path name(MAX_PATH, L'\0');
  for (;;) {
    const DWORD n = GetModuleFileNameW(self, name.data(), static_cast<DWORD>(name.size()));
    if (n == 0) return {};
    if (n < name.size()) return name.substr(0, name.find_last_of(L"\\/", n));
    name.resize(name.size() * 2);
  }
}
#else
using Handle = void *;
using Path = dfk::NativePath;
void unload(Handle h) { dlclose(h); }
template <class Fn> Fn symbol(Handle h, const char *name) { return reinterpret_cast<Fn>(dlsym(h, name)); }
const std::string &utf8(const Path &path) { return path; }
std::string last_error() {
  const char *text = dlerror();
  return text != nullptr ? text : "unknown error";
}
/** This binary's folder, empty if unknown. */
Path module_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void *>(&module_dir), &info) == 0 || info.dli_fname == nullptr) return {};
  const Path file = info.dli_fname;
  const size_t slash = file.find_last_of('/');
  return slash == Path::npos ? Path(".") : file.substr(0, slash);
}
#endif
constexpr const auto *kCoreFile = DFK_NATIVE(DFK_CORE_FILE);
constexpr const auto *kSeparator = dfk::kNativeSeparator;  // LoadLibraryExW wants backslashes

#ifdef __linux__
/** Why glibc cannot map `file` safely, or "": it maps a truncated ELF file (a half-copied core) and
 * the process dies of SIGBUS touching it, so a loadable segment past the end is refused here. */
std::string truncated_elf(const Path &file) {
  std::FILE *f = std::fopen(file.c_str(), "rb");
  if (f == nullptr) return {};  // dlopen says why
  struct stat st {};
  ElfW(Ehdr) eh{};
  std::string why;
  if (fstat(fileno(f), &st) == 0 && std::fread(&eh, sizeof eh, 1, f) == 1 && std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
      eh.e_ident[EI_CLASS] == (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) && eh.e_phentsize == sizeof(ElfW(Phdr))) {
    for (unsigned i = 0; i < eh.e_phnum && why.empty(); ++i) {  // anything else is dlopen's to refuse
      ElfW(Phdr) ph{};
      if (std::fseek(f, static_cast<long>(eh.e_phoff + i * sizeof ph), SEEK_SET) != 0 || std::fread(&ph, sizeof ph, 1, f) != 1)
        why = "truncated before its program headers end";
      else if (ph.p_type == PT_LOAD && ph.p_offset + ph.p_filesz > static_cast<unsigned long long>(st.st_size))
        why = "truncated (" + std::to_string(st.st_size) + " bytes, a segment ends at " +
              std::to_string(ph.p_offset + ph.p_filesz) + ")";
    }
  }
  std::fclose(f);
  return why;
}
#endif

/** One [ERROR] line in the plugin's log, in ofx_bridge/runtime.cpp's format and place. */
void log_error(const Path &dir, const std::string &message) noexcept {
  try {
    if (const dfk::OpenLog log = dfk::open_first_log(dfk::log_candidates(dir)); log.stream)
      std::fprintf(log.stream.get(), "%s\n", dfk::log_record("ERROR", message).c_str());
  } catch (...) {
    // Logging must never take the host down.
  }
}

/** The loaded library; unloaded when dropped unless released (kept for the life of the process). */
class Library {
 public:
  explicit Library(Handle handle) : handle_(handle) {}
  ~Library() {
    if (handle_ != nullptr) unload(handle_);
  }
  Library(const Library &) = delete;
  Library &operator=(const Library &) = delete;
  Handle get() const { return handle_; }
  void release() { handle_ = nullptr; }

 private:
  Handle handle_;
};

/** The core's entry points; all null when it could not be loaded. */
struct Core {
  OfxSetHostFn set_host = nullptr;
  OfxGetNumberOfPluginsFn count = nullptr;
  OfxGetPluginFn plugin = nullptr;
};

Core load_core() noexcept {
  Path dir;
  try {
    dir = module_dir();
    if (dir.empty()) {
      log_error(dir, "cannot locate the plugin binary itself: the plugin core is not loaded (0 plugins)");
      return {};
    }
    const Path file = dir + kSeparator + kCoreFile;
    const std::string reinstall = " (0 plugins: the bundle is incomplete or damaged, reinstall it)";
#ifdef __linux__
    if (const std::string why = truncated_elf(file); !why.empty()) {
      log_error(dir, "cannot load the plugin core " + file + ": " + why + reinstall);
      return {};
    }
#endif
#ifdef _WIN32
    DWORD mode = 0;
    SetThreadErrorMode(SEM_FAILCRITICALERRORS, &mode);  // a failure is logged, never a dialog box
    Library lib(LoadLibraryExW(file.c_str(), nullptr, LOAD_WITH_ALTERED_SEARCH_PATH));
    const std::string why = lib.get() == nullptr ? last_error() : std::string();
    SetThreadErrorMode(mode, nullptr);
#else
    Library lib(dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL));
    std::string why = lib.get() == nullptr ? last_error() : std::string();
    if (why.rfind(file + ": ", 0) == 0) why.erase(0, file.size() + 2);  // dlerror names the file too
#endif
    if (lib.get() == nullptr) {
      log_error(dir, "cannot load the plugin core " + utf8(file) + ": " + why + reinstall);
      return {};
    }
    Core core{symbol<OfxSetHostFn>(lib.get(), DFK_CORE_SET_HOST),
              symbol<OfxGetNumberOfPluginsFn>(lib.get(), DFK_CORE_GET_NUMBER_OF_PLUGINS),
              symbol<OfxGetPluginFn>(lib.get(), DFK_CORE_GET_PLUGIN)};
    if (core.set_host == nullptr || core.count == nullptr || core.plugin == nullptr) {
      log_error(dir, "the plugin core " + utf8(file) + " lacks the dfk_core_* entry points" + reinstall);
      return {};
    }
    lib.release();  // kept loaded for the life of the process
    return core;
  } catch (...) {
    log_error(dir, "cannot load the plugin core: unexpected error (0 plugins)");
    return {};
  }
}

/** Loaded once per process, on first use (thread-safe). */
const Core &core() noexcept {
  static const Core loaded = load_core();
  return loaded;
}

}  // namespace

extern "C" {

/** Without a core there is nothing to refuse: the host then finds 0 plugins. */
OfxExport OfxStatus OfxSetHost(const OfxHost *host) { return core().set_host ? core().set_host(host) : kOfxStatOK; }

OfxExport int OfxGetNumberOfPlugins(void) { return core().count ? core().count() : 0; }

OfxExport OfxPlugin *OfxGetPlugin(int nth) { return core().plugin ? core().plugin(nth) : nullptr; }

}  // extern "C"
