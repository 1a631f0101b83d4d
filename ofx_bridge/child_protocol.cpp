// child_protocol.cpp: framing of the plugin <-> child server messages (see child_protocol.h).
#include "child_protocol.h"

#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#ifndef MSG_NOSIGNAL  // macOS: the socket carries SO_NOSIGPIPE instead (child_client.cpp)
#define MSG_NOSIGNAL 0
#endif

namespace dfk {
namespace {

constexpr uint32_t kMaxMessage = 1u << 20;  // fields are short: anything larger is garbage

bool write_all(int fd, const char *data, size_t size) noexcept {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool read_all(int fd, char *data, size_t size) noexcept {
  while (size > 0) {
    const ssize_t n = ::recv(fd, data, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

std::string ChildMessage::get(const std::string &name, const std::string &fallback) const {
  const auto it = fields.find(name);
  return it == fields.end() ? fallback : it->second;
}

long long ChildMessage::get_int(const std::string &name, long long fallback) const {
  const auto it = fields.find(name);
  if (it == fields.end() || it->second.empty()) return fallback;
  char *end = nullptr;
  const long long value = std::strtoll(it->second.c_str(), &end, 10);
  return *end == '\0' ? value : fallback;
}

ChildMessage &ChildMessage::set(const std::string &name, const std::string &value) {
  std::string line = value;
  for (char &c : line)
    if (c == '\n' || c == '\r') c = ' ';
  fields[name] = line;
  return *this;
}

ChildMessage &ChildMessage::set(const std::string &name, long long value) { return set(name, std::to_string(value)); }

ChildMessage &ChildMessage::set(const std::string &name, double value) {
  char text[40];
  std::snprintf(text, sizeof text, "%.17g", value);
  return set(name, std::string(text));
}

bool send_message(int fd, const ChildMessage &message) noexcept {
  try {
    std::string body = message.op + "\n";
    for (const auto &[key, value] : message.fields) body += key + "=" + value + "\n";
    const uint32_t size = static_cast<uint32_t>(body.size());
    const unsigned char prefix[4] = {static_cast<unsigned char>(size), static_cast<unsigned char>(size >> 8),
                                     static_cast<unsigned char>(size >> 16), static_cast<unsigned char>(size >> 24)};
    return write_all(fd, reinterpret_cast<const char *>(prefix), 4) && write_all(fd, body.data(), body.size());
  } catch (...) {
    return false;
  }
}

bool receive_message(int fd, ChildMessage &message) noexcept {
  try {
    unsigned char prefix[4];
    if (!read_all(fd, reinterpret_cast<char *>(prefix), 4)) return false;
    const uint32_t size = prefix[0] | (prefix[1] << 8) | (prefix[2] << 16) | (static_cast<uint32_t>(prefix[3]) << 24);
    if (size == 0 || size > kMaxMessage) return false;
    std::string body(size, '\0');
    if (!read_all(fd, body.data(), size)) return false;
    std::istringstream in(body);
    message = ChildMessage{};
    if (!std::getline(in, message.op) || message.op.empty()) return false;
    std::string line;
    while (std::getline(in, line)) {
      const auto eq = line.find('=');
      if (eq == std::string::npos) return false;
      message.fields[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace dfk
