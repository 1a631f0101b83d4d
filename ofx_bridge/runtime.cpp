// runtime.cpp: log file, python.cfg, and starting (or attaching to) the embedded interpreter.
//
// One interpreter per process, started lazily with an ISOLATED PyConfig (the host's PYTHONHOME /
// PYTHONPATH are ignored, sys.path comes from the bundle's Contents/Resources/python.cfg, no
// signal handlers) and never finalized. The bundle is the host's OfxPluginPropFilePath (handed
// over by set_bundle_path before Python starts); only when the host gives none is it derived from
// this binary's own path. If the host already runs Python (Nuke, Resolve's scripting) we attach
// to it and only add our paths to sys.path. On Linux and macOS libpython is promoted to
// RTLD_GLOBAL first: hosts dlopen plugins RTLD_LOCAL, and numpy/torch extension modules resolve
// Py* symbols from the global scope. Windows resolves them per DLL and needs no promotion.
#include <pybind11/embed.h>

#include "runtime.h"

#include "log_file.h"  // and the platform headers

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

namespace py = pybind11;
namespace fs = std::filesystem;

namespace dfk {
namespace {

#ifdef _WIN32
constexpr char kPathListSeparator = ';';
#else
constexpr char kPathListSeparator = ':';
#endif

/** OFX strings and python.cfg are UTF-8; fs::path's narrow strings are not on Windows. */
fs::path path_from_utf8(const std::string &text) { return fs::u8path(text); }
std::string utf8(const fs::path &path) { return path.u8string(); }

/** This binary (Contents/<arch>/Deflicker.ofx), empty if unknown. */
fs::path module_path() {
#ifdef _WIN32
  HMODULE module = nullptr;
  if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                          reinterpret_cast<LPCWSTR>(&log_line), &module))
    return {};
  std::wstring name(MAX_PATH, L'\0');
  for (;;) {
    const DWORD n = GetModuleFileNameW(module, name.data(), static_cast<DWORD>(name.size()));
    if (n == 0) return {};
    if (n < name.size()) return fs::path(name.substr(0, n));
    name.resize(name.size() * 2);
  }
#else
  Dl_info info{};
  if (dladdr(reinterpret_cast<void *>(&log_line), &info) == 0 || info.dli_fname == nullptr) return {};
  return fs::absolute(fs::path(info.dli_fname));
#endif
}

/** Directory holding this binary (the plugin's Contents/<arch>/), empty if unknown. */
fs::path binary_dir() { return module_path().parent_path(); }

std::mutex g_bundle_mutex;
fs::path g_bundle;  // the host's OfxPluginPropFilePath, under g_bundle_mutex

/** `path` cut after its NAME.ofx.bundle component (hosts may name the binary or Contents/); as is without one. */
fs::path bundle_root(const fs::path &path) {
  fs::path out;
  for (const fs::path &part : path) {
    out /= part;
    const std::string name = utf8(part);
    if (name.size() > 7 && name.compare(name.size() - 7, 7, ".bundle") == 0) return out;
  }
  return path;
}

/** The log file as UTF-8, chosen as common/log_file.h says; empty when none can be written safely. */
std::string choose_log_file() {
  const OpenLog log = open_first_log(log_candidates(binary_dir().native()));
  return log.stream ? utf8(fs::path(log.path)) : std::string();
}

/** python.cfg (UTF-8): `home = DIR`, `stdlib = DIR`, `path = DIR` (repeatable); relative paths
 * are from the file's directory. */
struct PythonConfig {
  std::string home;
  std::vector<std::string> stdlib;
  std::vector<std::string> paths;
};

std::string trim(const std::string &s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

/** python.cfg: $DEFLICKER_OFX_PYTHON_CFG, else under the host's bundle path, else beside this binary. */
fs::path python_config_file() {
  if (const char *env = std::getenv("DEFLICKER_OFX_PYTHON_CFG"); env != nullptr && *env != '\0') {
    log_line(1, std::string("python.cfg from $DEFLICKER_OFX_PYTHON_CFG: ") + env);
    return path_from_utf8(env);
  }
  fs::path bundle;
  {
    const std::lock_guard<std::mutex> lock(g_bundle_mutex);
    bundle = g_bundle;
  }
  if (!bundle.empty()) {
    const fs::path file = bundle / "Contents" / "Resources" / "python.cfg";
    log_line(1, "python.cfg from the host's OfxPluginPropFilePath: " + utf8(file));
    return file;
  }
  const fs::path file = binary_dir().parent_path() / "Resources" / "python.cfg";
  log_line(2, "the host gave no OfxPluginPropFilePath: python.cfg from the plugin binary's own path: " + utf8(file));
  return file;
}

PythonConfig read_python_config() {
  PythonConfig cfg;
  const fs::path file = python_config_file();
  const fs::path resources = file.parent_path();
  std::ifstream in(file);
  if (!in) {
    log_line(2, "no " + utf8(file) + ": using the host's or the default Python paths");
    return cfg;
  }
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line);
    const auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    const std::string key = trim(line.substr(0, eq));
    fs::path value = path_from_utf8(trim(line.substr(eq + 1)));
    if (value.is_relative()) value = resources / value;
    const std::string text = utf8(value.lexically_normal());
    if (key == "home") cfg.home = text;
    else if (key == "stdlib") cfg.stdlib.push_back(text);
    else if (key == "path") cfg.paths.push_back(text);
  }
  return cfg;
}

/** Test/dev override: $DEFLICKER_OFX_EXTRA_PATH (':'-separated, ';' on Windows), searched before everything. */
std::vector<std::string> extra_paths() {
  std::vector<std::string> out;
  const char *env = std::getenv("DEFLICKER_OFX_EXTRA_PATH");
  if (env == nullptr) return out;
  std::stringstream ss(env);
  std::string item;
  while (std::getline(ss, item, kPathListSeparator))
    if (!item.empty()) out.push_back(item);
  return out;
}

#ifdef _WIN32
/** Let extension modules find the DLLs of the bundle's Python (its home and home/DLLs). */
void add_python_dll_dirs(const PythonConfig &cfg) {
  if (cfg.home.empty()) return;
  const fs::path home = path_from_utf8(cfg.home);
  for (const fs::path &dir : {home, home / "DLLs"}) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    // The cookie is never removed: the interpreter stays loaded for the life of the process.
    const bool added = AddDllDirectory(dir.wstring().c_str()) != nullptr;
    log_line(added ? 1 : 2, std::string(added ? "DLL directory added: " : "AddDllDirectory failed: ") + utf8(dir));
  }
}
#else
/** Make the libpython this plugin links visible to extension modules (RTLD_GLOBAL). */
void promote_libpython() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void *>(&Py_IsInitialized), &info) == 0 || info.dli_fname == nullptr) {
    log_line(2, "could not locate libpython with dladdr");
    return;
  }
  // Leaked on purpose: libpython must stay loaded for the life of the process.
  void *handle = dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  if (handle == nullptr) handle = dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL);
  log_line(handle ? 1 : 2, std::string(handle ? "libpython made global: " : "dlopen failed: ") + info.dli_fname);
}
#endif

void check(PyStatus status, const char *what) {
  if (PyStatus_Exception(status)) {
    throw std::runtime_error(std::string(what) + ": " + (status.err_msg ? status.err_msg : "failed"));
  }
}

void append_wide(PyWideStringList &list, const std::string &path) {
  wchar_t *w = Py_DecodeLocale(path.c_str(), nullptr);
  if (w == nullptr) throw std::runtime_error("cannot decode path " + path);
  const PyStatus status = PyWideStringList_Append(&list, w);
  PyMem_RawFree(w);
  check(status, "PyWideStringList_Append");
}

/** Start our own interpreter from an isolated config, then release the GIL for render threads. */
void start_interpreter(const PythonConfig &cfg, const std::vector<std::string> &extra) {
  PyConfig config;
  PyConfig_InitIsolatedConfig(&config);
  struct Clear {
    PyConfig *c;
    ~Clear() { PyConfig_Clear(c); }
  } clear{&config};
  config.install_signal_handlers = 0;
  config.site_import = 0;  // sys.path is exactly what python.cfg says
  config.write_bytecode = 0;
  if (!cfg.home.empty()) {
    wchar_t *w = Py_DecodeLocale(cfg.home.c_str(), nullptr);
    if (w == nullptr) throw std::runtime_error("cannot decode home " + cfg.home);
    const PyStatus status = PyConfig_SetString(&config, &config.home, w);
    PyMem_RawFree(w);
    check(status, "PyConfig_SetString(home)");
  }
  if (!cfg.stdlib.empty() || !cfg.paths.empty() || !extra.empty()) {
    config.module_search_paths_set = 1;
    for (const auto &p : extra) append_wide(config.module_search_paths, p);
    for (const auto &p : cfg.stdlib) append_wide(config.module_search_paths, p);
    for (const auto &p : cfg.paths) append_wide(config.module_search_paths, p);
  }
  check(Py_InitializeFromConfig(&config), "Py_InitializeFromConfig");
  PyEval_SaveThread();  // never restored: the interpreter lives until the process exits
}

/** Host already runs Python: put our paths first on its sys.path. */
void attach_paths(const PythonConfig &cfg, const std::vector<std::string> &extra) {
  py::list sys_path = py::module_::import("sys").attr("path");
  std::vector<std::string> ours = extra;
  ours.insert(ours.end(), cfg.paths.begin(), cfg.paths.end());
  for (auto it = ours.rbegin(); it != ours.rend(); ++it) {
    if (!sys_path.contains(py::str(*it))) sys_path.insert(0, py::str(*it));
  }
}

std::once_flag g_once;
std::string g_init_error;  // written once under call_once, read-only afterwards

void init_once() noexcept {
  try {
    const PythonConfig cfg = read_python_config();
    const std::vector<std::string> extra = extra_paths();
#ifdef _WIN32
    add_python_dll_dirs(cfg);
#else
    promote_libpython();
#endif
    const bool attached = Py_IsInitialized() != 0;
    if (!attached) start_interpreter(cfg, extra);
    py::gil_scoped_acquire gil;
    try {
      if (attached) attach_paths(cfg, extra);
      py::module_ sys = py::module_::import("sys");
      log_line(1, std::string(attached ? "attached to the host's Python " : "started embedded Python ") +
                      py::str(sys.attr("version")).cast<std::string>() +
                      "; sys.path = " + py::str(sys.attr("path")).cast<std::string>());
      const py::module_ server = py::module_::import(server_module_name().c_str());
      if (py::hasattr(server, "configure_logging")) server.attr("configure_logging")(log_file());
      log_line(1, "imported " + server_module_name());
    } catch (py::error_already_set &e) {
      g_init_error = std::string("cannot load the deflicker server: ") + e.what();
    }
  } catch (const std::exception &e) {
    g_init_error = std::string("cannot start Python: ") + e.what();
  } catch (...) {
    g_init_error = "cannot start Python: unknown error";
  }
  if (!g_init_error.empty()) log_line(3, g_init_error);
}

}  // namespace

void set_bundle_path(const std::string &path) noexcept {
  try {
    const fs::path bundle = bundle_root(path_from_utf8(path));
    bool changed = false;
    {
      const std::lock_guard<std::mutex> lock(g_bundle_mutex);
      changed = bundle != g_bundle;
      g_bundle = bundle;
    }
    if (changed) log_line(1, "bundle (the host's OfxPluginPropFilePath): " + utf8(bundle));
  } catch (...) {
    log_line(2, "set_bundle_path: unusable path");
  }
}

std::string bundle_path() {
  const std::lock_guard<std::mutex> lock(g_bundle_mutex);
  return utf8(g_bundle);
}

std::string binary_directory() { return utf8(binary_dir()); }

const std::string &log_file() noexcept {
  static const std::string path = [] {
    try {
      return choose_log_file();
    } catch (...) {
      return std::string();  // no log rather than an unsafe one
    }
  }();
  return path;
}

void log_line(int level, const std::string &message) noexcept {
  static std::mutex mutex;
  static const char *const names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
  try {
    const std::string line = log_record(names[level < 0 ? 0 : (level > 3 ? 3 : level)], message);
    const std::lock_guard<std::mutex> lock(mutex);
    if (log_file().empty()) return;
    std::string why;
    if (const LogStream out = open_log(path_from_utf8(log_file()).native(), why))  // again: never through a link
      std::fprintf(out.get(), "%s\n", line.c_str());
  } catch (...) {
    // Logging must never take the host down.
  }
}

bool ensure_python(std::string &why) noexcept {
  std::call_once(g_once, init_once);
  why = g_init_error;
  return g_init_error.empty();
}

std::string server_module_name() {
  const char *env = std::getenv("DEFLICKER_OFX_SERVER");
  return (env != nullptr && *env != '\0') ? env : "deflicker.server.model_server";
}

}  // namespace dfk
