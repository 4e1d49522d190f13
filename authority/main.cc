// latchkey-authority: owns all key state and streams it to sidecars.
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "absl/strings/str_join.h"
#include "authority/server.h"
#include "common/daemon.h"
#include "common/log.h"

int main(int argc, char** argv) {
  // Shutdown runs on the main thread, not in a signal handler.
  const sigset_t stop_signals = latchkey::BlockStopSignals();

  latchkey::AuthorityOptions options;
  latchkey::DaemonFlags daemon;
  daemon.metrics_listen = "127.0.0.1:7701";
  CLI::App app{"latchkey-authority: owns all key state and streams it to sidecars"};
  app.add_option("--listen", options.listen.addresses,
                 "gRPC listen address, host:port or unix:/path (repeatable)")
      ->default_str("127.0.0.1:7700");
  app.add_option("--data-dir", options.data_dir, "RocksDB data directory")->capture_default_str();
  app.add_option("--master-key-file", options.master_key_file,
                 "AES-256 master key for stored API key values (default <data-dir>/master.key)");
  app.add_option("--max-active-keys", options.max_active_keys, "active keys per project")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--event-retention", options.event_retention, "events kept for replay")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000000}));
  latchkey::AddDurationFlag(app, "--progress-interval", options.progress_interval,
                            "between progress messages on watch streams", absl::Milliseconds(10),
                            absl::Hours(1));
  latchkey::AddDurationFlag(app, "--forget-sidecar-after", options.forget_sidecar_after,
                            "how long a sidecar gone without a goodbye stays missing in receipts",
                            absl::Seconds(1), absl::Hours(24 * 7));
  app.add_option("--tls-cert", options.tls.cert, "PEM certificate for TLS listeners");
  app.add_option("--tls-key", options.tls.key, "PEM private key for --tls-cert");
  app.add_option("--tls-client-ca", options.tls.client_ca,
                 "PEM CA: clients must present a certificate it signed (mTLS)");
  latchkey::AddDaemonFlags(app, options.listen, daemon);
  CLI11_PARSE(app, argc, argv);
  options.metrics_listen = daemon.metrics_listen;
  options.metrics_allow_remote = daemon.metrics_allow_remote;
  if (options.listen.addresses.empty()) options.listen.addresses = {"127.0.0.1:7700"};

  if (absl::Status s = latchkey::InitLogging(daemon.log_format, daemon.log_level); !s.ok()) {
    std::cerr << "latchkey-authority: " << s.message() << "\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<latchkey::AuthorityServer>> server =
      latchkey::AuthorityServer::Start(options);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return 1;
  }
  std::vector<std::string> bound;
  for (size_t i = 0; i < options.listen.addresses.size(); ++i) {
    bound.push_back(options.listen.addresses[i] + " (port " + std::to_string((*server)->port(i)) +
                    ")");
  }
  spdlog::info("latchkey-authority {} serving on {}; data dir {}; admin token {}", LATCHKEY_VERSION,
               absl::StrJoin(bound, ", "), options.data_dir, (*server)->admin_token_path());
  const int sig = latchkey::AwaitStopSignal(stop_signals);
  spdlog::info("signal {}: shutting down", sig);
  (*server)->Shutdown();
  spdlog::info("stopped");
  return 0;
}
