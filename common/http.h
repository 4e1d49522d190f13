// What latchkey's HTTP servers (metrics, console) share around cpp-httplib.
#ifndef LATCHKEY_COMMON_HTTP_H_
#define LATCHKEY_COMMON_HTTP_H_

#include <thread>

namespace httplib {
class Server;
}

namespace latchkey {

// Runs `server`, already bound, on a new thread, and returns once it is
// running: httplib's stop() does nothing before that, so a server stopped
// right after starting would otherwise never return from its loop.
std::thread ServeInBackground(httplib::Server* server);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_HTTP_H_
