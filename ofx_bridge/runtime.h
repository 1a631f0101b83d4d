// runtime.h: the bridge's process-wide state: the log file and the one Python interpreter.
#ifndef DEFLICKER_OFX_BRIDGE_RUNTIME_H
#define DEFLICKER_OFX_BRIDGE_RUNTIME_H

#include <string>

namespace dfk {

/** Append one line to deflicker-ofx.log; level 0 debug, 1 info, 2 warning, 3 error. Thread-safe. */
void log_line(int level, const std::string &message) noexcept;

/** The log file in use (UTF-8; chosen as common/log_file.h says, empty if none is safe to write). */
const std::string &log_file() noexcept;

/** The plugin's bundle directory, from the host's OfxPluginPropFilePath (UTF-8; a path inside the
 * bundle is cut back to NAME.ofx.bundle). python.cfg is read from its Contents/Resources when Python
 * starts; until then the last call wins. Without one the bridge falls back to its own binary's path. */
void set_bundle_path(const std::string &path) noexcept;

/** The bundle directory set by set_bundle_path (UTF-8), empty if none. */
std::string bundle_path();

/** The directory of the binary holding this code (the bundle's Contents/<arch>/), UTF-8, empty if unknown. */
std::string binary_directory();

/** Start or attach to Python once per process (std::call_once); false + why when it failed. */
bool ensure_python(std::string &why) noexcept;

/** Name of the server module: $DEFLICKER_OFX_SERVER or "deflicker.server.model_server". */
std::string server_module_name();

}  // namespace dfk

#endif  // DEFLICKER_OFX_BRIDGE_RUNTIME_H
