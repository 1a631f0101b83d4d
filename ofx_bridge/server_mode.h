// server_mode.h: where the model server runs, embedded in the host process or in a child process.
#ifndef DEFLICKER_OFX_BRIDGE_SERVER_MODE_H
#define DEFLICKER_OFX_BRIDGE_SERVER_MODE_H

#include <string>

namespace dfk {

/** Why auto mode must not embed Python here ("the host process has libc10.so loaded (...)"), or ""
 * when nothing that could clash with the bundle's Python and torch is loaded in this process or
 * shipped beside the host's executable (a torch the host loads later). */
std::string embedding_clash();

/** True when the bridge talks to a child-process server. Decided once per process, logged:
 * $DEFLICKER_SERVER = embedded | child | auto (default): auto picks child when embedding_clash()
 * finds something. Windows has no child server yet and always embeds. */
bool use_child_server() noexcept;

}  // namespace dfk

#endif  // DEFLICKER_OFX_BRIDGE_SERVER_MODE_H
