#include "common/http.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace latchkey {

std::thread ServeInBackground(httplib::Server* server) {
  auto returned = std::make_shared<std::atomic<bool>>(false);  // the loop ended on its own
  std::thread thread([server, returned] {
    server->listen_after_bind();
    returned->store(true);
  });
  while (!server->is_running() && !returned->load()) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return thread;
}

absl::StatusOr<int> Bind(httplib::Server* server, const HostPort& at, std::string_view address) {
  const int port = at.port == 0 ? server->bind_to_any_port(at.host)
                                : (server->bind_to_port(at.host, at.port) ? at.port : -1);
  if (port <= 0) return absl::UnavailableError("cannot listen on " + std::string(address));
  return port;
}

}  // namespace latchkey
