// latchkey-sidecar as one object: a Follower (sidecar/follower.h: key set,
// sync client, usage reporter, state file) behind a gRPC Validator, with
// health and metrics, started and stopped together. main() and the
// in-process tests both use it.
#ifndef LATCHKEY_SIDECAR_SERVER_H_
#define LATCHKEY_SIDECAR_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/grpc_server.h"
#include "common/periodic.h"
#include "common/tls.h"
#include "sidecar/follower.h"

namespace latchkey {

struct SidecarOptions {
  ListenOptions listen{{"127.0.0.1:7710"}};
  std::string authority = "127.0.0.1:7700";
  ClientTlsFiles authority_tls;  // how to reach the authority over TLS
  std::string token;             // a SIDECAR (or ADMIN) principal's token
  std::string sidecar_id;        // empty: hostname-pid
  absl::Duration max_staleness = absl::Seconds(30);
  StalePolicy stale_policy = StalePolicy::kServe;
  absl::Duration usage_interval = absl::Seconds(10);
  size_t max_batch = 10000;
  std::string metrics_listen;         // host:port for HTTP /metrics; empty: off
  bool metrics_allow_remote = false;  // --metrics-listen may be beyond loopback
  // Where to save the key set (sidecar/state_file.h), every state_interval
  // when it changed and at shutdown, and to load it from at start. Empty: off.
  std::string state_file;
  absl::Duration state_interval = absl::Seconds(5);
  // For tests of the watch contract.
  std::function<void(uint64_t revision, bool snapshot)> on_applied;
};

class SidecarServer {
 public:
  // Serves at once (health NOT_SERVING until the first snapshot) and starts
  // following the authority in the background.
  static absl::StatusOr<std::unique_ptr<SidecarServer>> Start(SidecarOptions options);
  ~SidecarServer();  // Shutdown()

  // Stops serving, flushes usage, stops syncing. Idempotent.
  void Shutdown();

  int port(size_t i = 0) const { return ports_.at(i); }
  std::string address(size_t i = 0) const;
  const std::string& sidecar_id() const { return follower_->sidecar_id(); }
  const KeySet& keys() const { return follower_->keys(); }
  SyncClient::State sync_state() const { return follower_->sync_state(); }
  // Fresh: synced, and the authority confirmed our revision within
  // max_staleness.
  bool fresh() const { return follower_->fresh(); }
  // The bound port of the metrics server, 0 when it is off.
  int metrics_port() const;
  // Ends the current watch stream; the sidecar resumes (for tests).
  void Reconnect() { follower_->Reconnect(); }

 private:
  struct Parts;
  SidecarServer(SidecarOptions options);
  // Turns health SERVING or NOT_SERVING as fresh() changes (every 20 ms).
  void CheckHealth();

  SidecarOptions options_;
  std::unique_ptr<Follower> follower_;
  std::unique_ptr<Parts> parts_;
  std::vector<int> ports_;

  std::atomic<bool> stopped_{false};
  std::unique_ptr<Periodic> health_;  // CheckHealth
  bool serving_ = false;              // only CheckHealth touches it
};

}  // namespace latchkey

#endif  // LATCHKEY_SIDECAR_SERVER_H_
