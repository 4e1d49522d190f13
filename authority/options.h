// What latchkey-authority is started with (its flags, authority/main.cc),
// read by the wiring: OpenStore (authority/store_factory.h) and
// AuthorityServer (authority/server.h).
#ifndef LATCHKEY_AUTHORITY_OPTIONS_H_
#define LATCHKEY_AUTHORITY_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "authority/identity/oidc_verifier.h"
#include "authority/store/etcd/etcd_store.h"
#include "authority/webhooks/webhook_delivery.h"
#include "common/grpc_server.h"
#include "common/tls.h"

namespace latchkey {

struct AuthorityOptions {
  ListenOptions listen{{"127.0.0.1:7700"}};
  // "rocksdb": the embedded store in data_dir. "etcd": the replicated store
  // on `etcd`; then master_key_file is required and data_dir unused.
  std::string store = "rocksdb";
  EtcdStoreOptions etcd;
  // etcd: the first ADMIN's token, for an empty store (docs/operations.md).
  std::string bootstrap_token_file;
  std::string data_dir = "./latchkey-data";
  std::string master_key_file;  // empty: <data_dir>/master.key (rocksdb only)
  int max_active_keys = 50;
  uint64_t event_retention = 100000;
  absl::Duration progress_interval = absl::Seconds(1);
  size_t watch_queue_limit = 10000;
  // The last snapshot's chunks are kept for the sidecars that start after it
  // when they total at most this many MiB (about 80 bytes per key); 0: none.
  size_t snapshot_cache_mb = 256;
  // How long a sidecar whose watch stream ended without a goodbye stays in
  // receipts as missing.
  absl::Duration forget_sidecar_after = absl::Minutes(10);
  // How often usage reports summed in memory are written to the store (and
  // once more at shutdown): a crash loses at most this much of this
  // replica's usage counts.
  absl::Duration usage_flush_interval = absl::Seconds(10);
  // How often to check whether a burst of fan-out work is over, and give
  // the memory it freed back to the operating system
  // (common/memory_release.h); 0: never.
  absl::Duration memory_release_interval = absl::Seconds(1);
  ServerTlsFiles tls;                 // TLS (and mTLS) for the TCP listeners
  std::string metrics_listen;         // host:port for HTTP /metrics; empty: off
  bool metrics_allow_remote = false;  // --metrics-listen may be beyond loopback
  // GitHub secret scanning's endpoint (authority/rpc/secret_scanning.h): host:port,
  // empty: off; HTTPS with `tls`. Needs github_keys_file.
  std::string leak_report_listen;
  std::string github_keys_file;
  // OIDC ID tokens as bearer credentials (authority/identity/oidc_verifier.h);
  // issuer_url empty: off.
  OidcVerifierOptions oidc;
  // Webhook deliveries (authority/webhooks/webhook_delivery.h);
  // allow_insecure_remote follows listen's.
  WebhookDeliveryOptions webhooks;
  bool group_commit = true;  // off only to measure it (bench/)
  // Threads that run store reads and commits for RPCs (gRPC's callback
  // threads never block on the disk). Concurrent commits share one fsync.
  int store_threads = 16;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_OPTIONS_H_
