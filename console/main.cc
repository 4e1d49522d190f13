// latchkey-console: the admin web page. It calls KeyAdmin with the credential of
// whoever signed in to the page: a pasted token, or the ID token of their SSO
// session (console/sso_sessions.h); it has none of its own.
#include <CLI/CLI.hpp>
#include <iostream>

#include "common/crash.h"
#include "common/daemon.h"
#include "common/log.h"
#include "console/console_server.h"

int main(int argc, char** argv) {
  latchkey::ReportCrashes(argv[0]);
  const sigset_t stop_signals = latchkey::BlockStopSignals();

  latchkey::console::ConsoleOptions options;
  std::string log_format = "text", log_level = "info";
  CLI::App app{"latchkey-console: the admin web page for latchkey keys"};
  app.add_option("--listen", options.listen, "HTTP(S) address, host:port")->capture_default_str();
  app.add_option("--authority", options.authority, "authority address")->capture_default_str();
  app.add_option("--authority-ca", options.authority_tls.ca,
                 "PEM CA to verify the authority's certificate (enables TLS to it)");
  app.add_option("--authority-cert", options.authority_tls.cert,
                 "PEM client certificate for the authority (mTLS)");
  app.add_option("--authority-key", options.authority_tls.key,
                 "PEM private key for --authority-cert");
  app.add_option("--tls-cert", options.tls_cert, "PEM certificate: serve the page over HTTPS");
  app.add_option("--tls-key", options.tls_key, "PEM private key for --tls-cert");
  app.add_flag("--allow-insecure-remote", options.allow_insecure_remote,
               "allow plain HTTP beyond loopback (behind a TLS proxy only)");
  app.add_option("--max-body-bytes", options.max_body_bytes, "largest API request body")
      ->capture_default_str()
      ->check(CLI::Range(1024, 4 << 20));
  app.add_option("--oidc-issuer-url", options.oidc.issuer_url,
                 "offer \"Sign in with SSO\" through this OIDC issuer (https://, or http:// on "
                 "loopback; the authority must accept its ID tokens)");
  app.add_option("--oidc-client-id", options.oidc.client_id, "this console's client id there");
  app.add_option("--oidc-client-secret-file", options.oidc_client_secret_file,
                 "a file holding the client secret (none: a public client, PKCE alone)");
  app.add_option("--oidc-redirect-url", options.oidc.redirect_url,
                 "the URL the provider sends people back to (default: http://<--listen>/"
                 "oidc/callback); register it at the provider");
  app.add_option("--oidc-scopes", options.oidc.scopes, "the scopes asked for")
      ->capture_default_str();
  app.add_option("--oidc-ca-file", options.oidc.ca_file,
                 "PEM CA certificates to trust for the issuer (default: the system's)");
  app.add_option("--token-sign-in", options.token_sign_in,
                 "whether a pasted token may sign in (break-glass access beside SSO)")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text or json")->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (absl::Status s = latchkey::InitLogging(log_format, log_level); !s.ok()) {
    std::cerr << "latchkey-console: " << s.message() << "\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<latchkey::console::ConsoleServer>> server =
      latchkey::console::ConsoleServer::Start(options);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return 1;
  }
  spdlog::info("latchkey-console {} serving on {}; authority {}", LATCHKEY_VERSION,
               (*server)->url(), options.authority);
  const int sig = latchkey::AwaitStopSignal(stop_signals);
  spdlog::info("signal {}: shutting down", sig);
  server->reset();
  spdlog::info("stopped");
  return 0;
}
