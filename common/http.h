// What latchkey's HTTP servers (metrics, console) share around cpp-httplib.
#ifndef LATCHKEY_COMMON_HTTP_H_
#define LATCHKEY_COMMON_HTTP_H_

#include <string_view>
#include <thread>

#include "absl/status/statusor.h"
#include "common/net.h"

namespace httplib {
class Server;
}

namespace latchkey {

// Runs `server`, already bound, on a new thread, and returns once it is
// running: httplib's stop() does nothing before that, so a server stopped
// right after starting would otherwise never return from its loop.
std::thread ServeInBackground(httplib::Server* server);

// Binds `server` to `at` (port 0: a free port) and returns the bound port;
// UNAVAILABLE naming `address` (the flag's value) when it cannot.
absl::StatusOr<int> Bind(httplib::Server* server, const HostPort& at, std::string_view address);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_HTTP_H_
