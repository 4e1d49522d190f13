// latchkey-console's HTTP(S) server: the page (HTML, CSS and JavaScript
// built into the binary) and the JSON API of admin_gateway.h under
// POST /api/v1/<KeyAdmin method>.
//
// Every answer carries a strict Content-Security-Policy and the other headers
// of docs/console.md; API answers are never cached. An API request brings
// its credential: a pasted token in the Authorization header, or the cookie
// of a session opened by "Sign in with SSO" (sso_sessions.h, under /oidc/),
// for which the console holds the person's ID token.
//
// A ConsoleServer is safe for concurrent access from multiple threads without
// any external synchronization.
#ifndef LATCHKEY_CONSOLE_CONSOLE_SERVER_H_
#define LATCHKEY_CONSOLE_CONSOLE_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/oidc_client.h"
#include "common/tls.h"
#include "console/admin_gateway.h"
#include "console/sso_sessions.h"

namespace httplib {
class Server;
struct Request;
}  // namespace httplib

namespace latchkey::console {

struct ConsoleOptions {
  std::string listen = "127.0.0.1:7720";  // host:port; port 0 picks one
  bool allow_insecure_remote = false;     // plain HTTP beyond loopback
  std::string tls_cert;                   // HTTPS on our listener: PEM certificate
  std::string tls_key;                    // and its private key
  std::string authority = "127.0.0.1:7700";
  ClientTlsFiles authority_tls;  // how to reach the authority over TLS
  size_t max_body_bytes = 64 * 1024;
  // "Sign in with SSO" (issuer_url empty: off). oidc.redirect_url empty:
  // this console's own URL + "oidc/callback".
  OidcClientOptions oidc;
  std::string oidc_client_secret_file;
  // Whether a pasted token may sign in (break-glass access beside SSO).
  bool token_sign_in = true;
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

  void RouteSignIn();
  // The Authorization header to call the authority with, from the request's
  // pasted token or its session cookie; or the refusal to answer.
  absl::StatusOr<std::string> Credential(const httplib::Request& req);
  std::unique_ptr<AdminGateway> gateway_;
  std::unique_ptr<SsoSessions> sso_;  // null: SSO off
  bool token_sign_in_ = true;
  bool secure_cookie_ = false;
  std::string origin_;  // the page's origin, as browsers send it in Origin
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::string url_;
};

}  // namespace latchkey::console

#endif  // LATCHKEY_CONSOLE_CONSOLE_SERVER_H_
