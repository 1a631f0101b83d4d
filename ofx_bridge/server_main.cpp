// server_main.cpp: deflicker_server, the child-process model server the plugin starts
// (DEFLICKER_SERVER=child, or auto in a host with its own torch or Python; see child_client.cpp).
//
//   deflicker_server --bundle BUNDLE --generation N    (socket on fd 3, shared frame file on fd 4)
//
// It starts Python exactly as the embedded bridge does (the bundle's python.cfg, an isolated
// config: runtime.cpp), so both modes run the same interpreter, paths and server module, then
// hands the descriptors to deflicker.server.child.main. If Python cannot start it says why on the
// socket before exiting. stdout goes to stderr: the host's stdout is not ours to write.
#include <pybind11/embed.h>

#include "child_protocol.h"
#include "runtime.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace py = pybind11;

namespace {

constexpr int kSocketFd = 3;
constexpr int kFramesFd = 4;

/** Close every descriptor the host let us inherit, except stdio, the socket and the frame file. */
void close_inherited() {
  const long max = sysconf(_SC_OPEN_MAX);
  for (int fd = kFramesFd + 1; fd < (max > 0 && max < 65536 ? max : 65536); ++fd) ::close(fd);
}

int fail(const std::string &why) {
  dfk::ChildMessage ready;
  ready.op = "result";
  ready.set("status", 4LL).set("error", why);  // DFK_NO_PYTHON
  dfk::send_message(kSocketFd, ready);
  dfk::log_line(3, "deflicker_server: " + why);
  return 3;
}

}  // namespace

int main(int argc, char **argv) {
  std::string bundle;
  long long generation = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--bundle") == 0) bundle = argv[i + 1];
    else if (std::strcmp(argv[i], "--generation") == 0) generation = std::atoll(argv[i + 1]);
  }
  if (fcntl(kSocketFd, F_GETFD) < 0 || fcntl(kFramesFd, F_GETFD) < 0) {
    static const char usage[] = "deflicker_server: started by the Deflicker OFX plugin only (needs fds 3 and 4)\n";
    if (write(2, usage, sizeof usage - 1) < 0) return 2;  // nowhere else to say it
    return 2;
  }
  close_inherited();
  dup2(2, 1);
  if (!bundle.empty()) dfk::set_bundle_path(bundle);
  std::string why;
  if (!dfk::ensure_python(why)) return fail(why);
  try {
    py::gil_scoped_acquire gil;
    py::module_::import("deflicker.server.child")
        .attr("main")(kSocketFd, kFramesFd, dfk::server_module_name(), generation);
  } catch (const std::exception &e) {
    return fail(std::string("RuntimeError: the analysis server failed: ") + e.what());
  }
  return 0;
}
