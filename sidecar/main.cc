// latchkey-sidecar: validates keys from memory beside an ingestion pod.
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "absl/strings/str_join.h"
#include "common/crash.h"
#include "common/daemon.h"
#include "common/files.h"
#include "common/log.h"
#include "sidecar/server.h"

int main(int argc, char** argv) {
  latchkey::ReportCrashes(argv[0]);
  // Shutdown runs on the main thread, not in a signal handler.
  const sigset_t stop_signals = latchkey::BlockStopSignals();

  latchkey::SidecarOptions options;
  latchkey::DaemonFlags daemon;
  daemon.metrics_listen = "127.0.0.1:7711";
  std::string token_file, stale_policy = "serve";
  CLI::App app{"latchkey-sidecar: validates keys from memory beside an ingestion pod"};
  app.add_option("--listen", options.listen.addresses,
                 "Validator listen address, host:port or unix:/path (repeatable)")
      ->default_str("127.0.0.1:7710");
  app.add_option("--authority", options.authority,
                 "authority address, or several replicas: IP:PORT,IP:PORT (moves to another when "
                 "one goes away)")
      ->capture_default_str();
  app.add_option("--token-file", token_file, "file holding a SIDECAR principal's token")
      ->required();
  app.add_option("--sidecar-id", options.sidecar_id,
                 "name in revocation receipts (default hostname-pid)");
  latchkey::AddDurationFlag(app, "--max-staleness", options.max_staleness,
                            "without the authority confirming our revision before NOT_SERVING",
                            absl::Milliseconds(100), absl::Hours(24));
  app.add_option("--stale-policy", stale_policy, "when stale: serve (last known set) or reject")
      ->capture_default_str()
      ->check(CLI::IsMember({"serve", "reject"}));
  latchkey::AddDurationFlag(app, "--usage-interval", options.usage_interval,
                            "between usage reports", absl::Milliseconds(50), absl::Hours(1));
  app.add_option("--max-batch", options.max_batch, "most keys in one ValidateBatch")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--state-file", options.state_file,
                 "save the key set here (digests only) and start from it when the authority is "
                 "unreachable");
  latchkey::AddDurationFlag(app, "--state-interval", options.state_interval,
                            "between saves of --state-file (when the set changed)",
                            absl::Milliseconds(100), absl::Hours(1));
  app.add_option("--authority-ca", options.authority_tls.ca,
                 "PEM CA to verify the authority's certificate (enables TLS)");
  app.add_option("--tls-cert", options.authority_tls.cert,
                 "PEM client certificate for the authority (mTLS)");
  app.add_option("--tls-key", options.authority_tls.key, "PEM private key for --tls-cert");
  latchkey::AddDaemonFlags(app, options.listen, daemon);
  CLI11_PARSE(app, argc, argv);
  options.metrics_listen = daemon.metrics_listen;
  options.metrics_allow_remote = daemon.metrics_allow_remote;
  if (options.listen.addresses.empty()) options.listen.addresses = {"127.0.0.1:7710"};
  options.stale_policy =
      stale_policy == "reject" ? latchkey::StalePolicy::kReject : latchkey::StalePolicy::kServe;

  if (absl::Status s = latchkey::InitLogging(daemon.log_format, daemon.log_level); !s.ok()) {
    std::cerr << "latchkey-sidecar: " << s.message() << "\n";
    return 2;
  }
  absl::StatusOr<std::string> token = latchkey::ReadTokenFile(token_file);
  if (!token.ok()) {
    spdlog::error("cannot read --token-file: {}", token.status().ToString());
    return 2;
  }
  options.token = *token;
  absl::StatusOr<std::unique_ptr<latchkey::SidecarServer>> server =
      latchkey::SidecarServer::Start(options);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return 1;
  }
  std::vector<std::string> bound;
  for (size_t i = 0; i < options.listen.addresses.size(); ++i) {
    bound.push_back((*server)->address(i));
  }
  spdlog::info("latchkey-sidecar {} ({}) serving on {}; following authority {}", LATCHKEY_VERSION,
               (*server)->sidecar_id(), absl::StrJoin(bound, ", "), options.authority);
  const int sig = latchkey::AwaitStopSignal(stop_signals);
  spdlog::info("signal {}: shutting down", sig);
  (*server)->Shutdown();
  spdlog::info("stopped");
  return 0;
}
