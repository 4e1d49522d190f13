// What latchkey's HTTP servers (metrics, console) share around cpp-httplib.
#ifndef LATCHKEY_COMMON_HTTP_H_
#define LATCHKEY_COMMON_HTTP_H_

#include <string>
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

// An http:// or https:// URL, split for a client.
struct HttpUrl {
  bool tls = false;  // https
  std::string host;  // brackets of an IPv6 host kept: "[::1]"
  int port = 0;      // the scheme's default when the URL names none
  std::string path;  // with the query; "/" when empty
  // "https://host:port", what an httplib::Client is made from.
  std::string origin() const;
  // The origin as a browser sends it in an Origin header (RFC 6454): the
  // host in lower case, the port left out when it is the scheme's default.
  std::string web_origin() const;
  // Whether the host is loopback (IsLocalAddress): names are not resolved.
  bool local() const;
};

// INVALID_ARGUMENT, naming what is wrong, for anything but
// scheme://host[:port][/path] with scheme http or https, no user info, no
// fragment, no whitespace or control characters.
absl::StatusOr<HttpUrl> ParseHttpUrl(std::string_view url);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_HTTP_H_
