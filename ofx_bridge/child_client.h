// child_client.h: the bridge calls (bridge.h) served by a child process of the plugin.
//
// Same arguments, statuses and messages as the embedded server; the child is the bundle's
// Contents/<arch>/deflicker_server running deflicker.server.child. A child that dies makes the call
// in flight fail with "the analysis server stopped (...)"; the next call starts a new one.
#ifndef DEFLICKER_OFX_BRIDGE_CHILD_CLIENT_H
#define DEFLICKER_OFX_BRIDGE_CHILD_CLIENT_H

#include "bridge.h"

namespace dfk {
namespace child {

DfkStatus init(char *err, size_t err_size) noexcept;
DfkStatus open_clip(const char *instance_id, const DfkClipInfo *info, const DfkSettings *settings,
                    const DfkCallbacks *cb, const char *persisted_key, char *key_out, size_t key_size, char *err,
                    size_t err_size) noexcept;
DfkStatus analyze(const char *key, int force, const DfkCallbacks *cb, char *err, size_t err_size) noexcept;
DfkStatus render(const char *key, int index, const DfkSettings *settings, const DfkCallbacks *cb, const DfkImage *dst,
                 char *err, size_t err_size) noexcept;
DfkStatus frames_needed(const char *key, const DfkClipInfo *info, int index, const DfkSettings *settings, int *ranges,
                        int capacity, int *count, char *err, size_t err_size) noexcept;
DfkStatus status(const char *key, char *out, size_t out_size) noexcept;
DfkStatus close_instance(const char *instance_id, char *err, size_t err_size) noexcept;
DfkStatus purge_caches(char *err, size_t err_size) noexcept;

}  // namespace child
}  // namespace dfk

#endif  // DEFLICKER_OFX_BRIDGE_CHILD_CLIENT_H
