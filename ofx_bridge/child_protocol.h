// child_protocol.h: the messages between the plugin and its child-process model server.
//
// A message is a 4-byte little-endian length, then that many bytes of UTF-8 text: the operation
// on the first line, then one `key=value` line per field (values are single lines; numbers are
// written in full precision). Pixels never travel here: they go through the shared frame file
// (child_client.cpp). deflicker/server/child.py speaks the same format. POSIX only.
#ifndef DEFLICKER_OFX_BRIDGE_CHILD_PROTOCOL_H
#define DEFLICKER_OFX_BRIDGE_CHILD_PROTOCOL_H

#include <map>
#include <string>

namespace dfk {

/** One message: an operation and its named fields. */
struct ChildMessage {
  std::string op;
  std::map<std::string, std::string> fields;

  /** The field `name`, or `fallback` when absent. */
  std::string get(const std::string &name, const std::string &fallback = "") const;
  /** The field `name` as an integer, or `fallback` when absent or not a number. */
  long long get_int(const std::string &name, long long fallback = 0) const;
  /** Set a text field (newlines become spaces: every value is one line). */
  ChildMessage &set(const std::string &name, const std::string &value);
  /** Set a number field (doubles in round-trip precision). */
  ChildMessage &set(const std::string &name, long long value);
  ChildMessage &set(const std::string &name, double value);
};

/** Write one message to a stream socket; false when the peer is gone (never raises SIGPIPE). */
bool send_message(int fd, const ChildMessage &message) noexcept;

/** Read one message; false on end of file, a read error or a malformed message. */
bool receive_message(int fd, ChildMessage &message) noexcept;

}  // namespace dfk

#endif  // DEFLICKER_OFX_BRIDGE_CHILD_PROTOCOL_H
