#include "common/http.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>

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

}  // namespace latchkey
