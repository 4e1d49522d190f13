// latchkey-console's HTTP(S) server: the page (HTML, CSS and JavaScript
// built into the binary) and the JSON API of admin_gateway.h under
// POST /api/v1/<KeyAdmin method>.
//
// Every answer carries a strict Content-Security-Policy and the other headers
// of docs/console.md; API answers are never cached. The console keeps no
// token: each API request brings its own in the Authorization header.
//
// A ConsoleServer is safe for concurrent access from multiple threads without
// any external synchronization.
#ifndef LATCHKEY_CONSOLE_CONSOLE_SERVER_H_
#define LATCHKEY_CONSOLE_CONSOLE_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/tls.h"
#include "console/admin_gateway.h"

namespace httplib {
class Server;
}

namespace latchkey::console {

struct ConsoleOptions {
  std::string listen = "127.0.0.1:7720";  // host:port; port 0 picks one
  bool allow_insecure_remote = false;     // plain HTTP beyond loopback
  std::string tls_cert;                   // HTTPS on our listener: PEM certificate
  std::string tls_key;                    // and its private key
  std::string authority = "127.0.0.1:7700";
  ClientTlsFiles authority_tls;  // how to reach the authority over TLS
  size_t max_body_bytes = 64 * 1024;
};

class ConsoleServer {
 public:
  // Listens and serves on a thread of its own. INVALID_ARGUMENT for a bad
  // address, half a TLS pair, or plain HTTP beyond loopback without
  // allow_insecure_remote; UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ConsoleServer>> Start(const ConsoleOptions& options);
  ~ConsoleServer();

  int port() const { return port_; }
  // "http://127.0.0.1:7720/", for people.
  const std::string& url() const { return url_; }

 private:
  ConsoleServer() = default;
  void Route();

  std::unique_ptr<AdminGateway> gateway_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::string url_;
};

}  // namespace latchkey::console

#endif  // LATCHKEY_CONSOLE_CONSOLE_SERVER_H_
