// latchkey-authority: owns all key state and streams it to sidecars.
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "absl/strings/str_join.h"
#include "authority/server.h"
#include "authority/store_factory.h"
#include "common/crash.h"
#include "common/daemon.h"
#include "common/key_format.h"
#include "common/log.h"
#include "common/net.h"

namespace {

// latchkey-authority migrate: the copy, then what to start the replicas with.
int Migrate(latchkey::AuthorityOptions options, const std::string& endpoints) {
  absl::StatusOr<std::vector<std::string>> parsed = latchkey::ParseEndpoints(endpoints);
  if (!parsed.ok()) {
    std::cerr << "latchkey-authority migrate: --to-etcd: " << parsed.status().message() << "\n";
    return 2;
  }
  options.etcd.endpoints = *std::move(parsed);
  absl::StatusOr<latchkey::ImportReport> report = latchkey::MigrateToEtcd(options);
  if (!report.ok()) {
    std::cerr << "latchkey-authority migrate: " << report.status().ToString() << "\n";
    return 1;
  }
  const std::string master_key = latchkey::EmbeddedMasterKeyPath(options);
  std::cout << "copied store " << report->store_id << " at revision " << report->head << " into "
            << endpoints << " prefix " << options.etcd.prefix << ": " << report->rows << " rows, "
            << report->audit << " audit records, " << report->events << " events for replay\n"
            << "start every replica with --store=etcd --etcd-endpoints " << endpoints
            << " --etcd-prefix " << options.etcd.prefix << " --master-key-file " << master_key
            << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  latchkey::ReportCrashes(argv[0]);
  // Shutdown runs on the main thread, not in a signal handler.
  const sigset_t stop_signals = latchkey::BlockStopSignals();

  latchkey::AuthorityOptions options;
  latchkey::DaemonFlags daemon;
  daemon.metrics_listen = "127.0.0.1:7701";
  CLI::App app{"latchkey-authority: owns all key state and streams it to sidecars"};
  app.add_option("--listen", options.listen.addresses,
                 "gRPC listen address, host:port or unix:/path (repeatable)")
      ->default_str("127.0.0.1:7700");
  app.add_option("--store", options.store,
                 "where state lives: rocksdb (embedded, one machine) or etcd (replicas)")
      ->capture_default_str()
      ->check(CLI::IsMember({"rocksdb", "etcd"}));
  app.add_option("--data-dir", options.data_dir, "RocksDB data directory (--store=rocksdb)")
      ->capture_default_str();
  app.add_option("--master-key-file", options.master_key_file,
                 "AES-256 master key for stored API key values (rocksdb: default "
                 "<data-dir>/master.key, made on first start; etcd: required, never made)");
  app.add_option_function<std::string>(
         "--etcd-endpoints",
         [&options](const std::string& list) {
           options.etcd.endpoints = *latchkey::ParseEndpoints(list);
         },
         "etcd members, HOST:PORT,... (--store=etcd)")
      ->check(CLI::Validator(
          [](std::string& list) -> std::string {
            absl::StatusOr<std::vector<std::string>> parsed = latchkey::ParseEndpoints(list);
            return parsed.ok() ? "" : std::string(parsed.status().message());
          },
          "HOST:PORT,..."));
  app.add_option("--etcd-prefix", options.etcd.prefix,
                 "key prefix in etcd; deployments sharing a cluster use different ones")
      ->capture_default_str();
  app.add_option("--etcd-ca", options.etcd.ca_file, "PEM CA that signed etcd's certificates");
  app.add_option("--etcd-cert", options.etcd.cert_file, "PEM client certificate for etcd");
  app.add_option("--etcd-key", options.etcd.key_file, "PEM private key for --etcd-cert");
  app.add_option("--bootstrap-token-file", options.bootstrap_token_file,
                 "etcd: token of the first ADMIN, created by the first replica to start on an "
                 "empty store");
  app.add_option("--max-active-keys", options.max_active_keys, "active keys per project")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--event-retention", options.event_retention, "events kept for replay")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000000}));
  app.add_option("--snapshot-cache-mb", options.snapshot_cache_mb,
                 "keep the last snapshot's chunks for sidecars that start after it, up to this "
                 "many MiB (about 80 bytes per key); 0: read every snapshot from the store")
      ->capture_default_str()
      ->check(CLI::Range(size_t{0}, size_t{1} << 20));
  latchkey::AddDurationFlag(app, "--progress-interval", options.progress_interval,
                            "between progress messages on watch streams", absl::Milliseconds(10),
                            absl::Hours(1));
  latchkey::AddDurationFlag(app, "--forget-sidecar-after", options.forget_sidecar_after,
                            "how long a sidecar gone without a goodbye stays missing in receipts",
                            absl::Seconds(1), absl::Hours(24 * 7));
  // At most 30 s: an etcd replica holds its usage writer on a 60 s lease
  // that each flush renews.
  latchkey::AddDurationFlag(app, "--usage-flush-interval", options.usage_flush_interval,
                            "how often usage reports summed in memory are written to the store",
                            absl::Milliseconds(100), absl::Seconds(30));
  latchkey::AddDurationFlag(app, "--memory-release-interval", options.memory_release_interval,
                            "how often to check whether a burst of work is over and give the "
                            "memory it freed back to the operating system",
                            absl::Milliseconds(100), absl::Minutes(10), /*zero_turns_off=*/true);
  app.add_option("--tls-cert", options.tls.cert, "PEM certificate for TLS listeners");
  app.add_option("--tls-key", options.tls.key, "PEM private key for --tls-cert");
  app.add_option("--tls-client-ca", options.tls.client_ca,
                 "PEM CA: clients must present a certificate it signed (mTLS)");
  app.add_option("--leak-report-listen", options.leak_report_listen,
                 "host:port for GitHub secret scanning's POST /secret-scanning/github "
                 "(HTTPS with --tls-cert; empty: off)");
  app.add_option("--github-keys-file", options.github_keys_file,
                 "GitHub's secret scanning public keys (JSON as GitHub publishes them), read "
                 "again when it changes");
  app.add_option("--oidc-issuer-url", options.oidc.issuer_url,
                 "accept OIDC ID tokens from this issuer as bearer credentials (https://, or "
                 "http:// on loopback; empty: off)");
  app.add_option("--oidc-client-id", options.oidc.client_id,
                 "the audience (aud) ID tokens must be issued for");
  app.add_option("--oidc-username-claim", options.oidc.username_claim,
                 "the claim that names the person in audit records and user bindings")
      ->capture_default_str();
  app.add_option("--oidc-groups-claim", options.oidc.groups_claim,
                 "the claim listing the person's groups, for group bindings")
      ->capture_default_str();
  app.add_option("--oidc-ca-file", options.oidc.ca_file,
                 "PEM CA certificates to trust for the issuer (default: the system's)");
  latchkey::AddDurationFlag(app, "--webhook-retry-min", options.webhooks.retry_min,
                            "the wait after a webhook delivery fails; it doubles after each "
                            "failed attempt up to --webhook-retry-max",
                            absl::Milliseconds(10), absl::Hours(1));
  latchkey::AddDurationFlag(app, "--webhook-retry-max", options.webhooks.retry_max,
                            "the longest wait between attempts at one webhook event",
                            absl::Milliseconds(10), absl::Hours(24));
  latchkey::AddDurationFlag(app, "--webhook-failing-after", options.webhooks.failing_after,
                            "how long an event fails before its webhook is marked FAILING",
                            absl::Milliseconds(10), absl::Hours(24 * 7));
  latchkey::AddDaemonFlags(app, options.listen, daemon);
  CLI::App* new_token =
      app.add_subcommand("new-token", "print a fresh token (for --bootstrap-token-file) and exit");
  CLI::App* migrate = app.add_subcommand(
      "migrate", "copy the embedded store in --data-dir into an empty etcd prefix, and exit");
  std::string to_etcd;
  migrate->add_option("--to-etcd", to_etcd, "etcd members, HOST:PORT,...")->required();
  migrate->fallthrough();  // --data-dir, --etcd-prefix, TLS and retention flags
  CLI11_PARSE(app, argc, argv);
  if (*new_token) {
    std::cout << latchkey::GenerateToken() << "\n";
    return 0;
  }
  if (*migrate) return Migrate(options, to_etcd);
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
  spdlog::info("latchkey-authority {} serving on {}; {}; admin token {}", LATCHKEY_VERSION,
               absl::StrJoin(bound, ", "), latchkey::StoreDescription(options),
               (*server)->admin_token_path());
  const int sig = latchkey::AwaitStopSignal(stop_signals);
  spdlog::info("signal {}: shutting down", sig);
  (*server)->Shutdown();
  spdlog::info("stopped");
  return 0;
}
