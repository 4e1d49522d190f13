// Following an authority and validating from memory, without serving
// anything: the key set, the sync client (watch stream, acknowledgements for
// receipts), the usage reporter, the staleness policy and the state file.
//
// latchkey-sidecar is a Follower behind a gRPC Validator (sidecar/server.h);
// C++ ingestion services link the same Follower through the one public
// header include/latchkey/edge.h and validate with a function call.
//
// A Follower is safe for concurrent access from multiple threads without any
// external synchronization.
#ifndef LATCHKEY_SIDECAR_FOLLOWER_H_
#define LATCHKEY_SIDECAR_FOLLOWER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics.h"
#include "common/periodic.h"
#include "common/tls.h"
#include "sidecar/key_set.h"
#include "sidecar/sync_client.h"
#include "sidecar/usage.h"

namespace latchkey {

enum class StalePolicy { kServe, kReject };

struct FollowerOptions {
  std::string authority = "127.0.0.1:7700";  // or several: ClientTarget, common/net.h
  ClientTlsFiles authority_tls;              // how to reach the authority over TLS
  std::string token;                         // a SIDECAR (or ADMIN) principal's token
  std::string sidecar_id;                    // name in receipts; empty: hostname-pid
  absl::Duration max_staleness = absl::Seconds(30);
  StalePolicy stale_policy = StalePolicy::kServe;
  absl::Duration usage_interval = absl::Seconds(10);
  // Where to save the key set (sidecar/state_file.h), every state_interval
  // when it changed and at shutdown, and to load it from at start. Empty: off.
  std::string state_file;
  absl::Duration state_interval = absl::Seconds(5);
  // For tests of the watch contract.
  std::function<void(uint64_t revision, bool snapshot)> on_applied;
};

// The whole check of one key, as every Validator answers it: under
// `rejecting` (stale under the reject policy) a well-formed key is UNKNOWN;
// otherwise the key set's verdict (which reads the clock only for a key with
// an expiry time).
Validation Check(const KeySet& keys, std::string_view key, bool rejecting);
// Check, with the verdict counted for the authority (UseOf in
// sidecar/usage.h) and stamped with the coarse clock (CoarseNow).
Validation CheckAndCount(const KeySet& keys, UsageCounter& usage, std::string_view key,
                         bool rejecting);

class Follower {
 public:
  // Starts following in the background (loading the state file first, if
  // any). INVALID_ARGUMENT without a token or for an authority address
  // ClientTarget refuses; ChannelCredentials' error (common/tls.h) for TLS
  // files it cannot use.
  static absl::StatusOr<std::unique_ptr<Follower>> Start(FollowerOptions options);
  ~Follower();  // Stop()

  // Flushes usage, tells the authority this follower leaves, stops syncing
  // and saves the state file. Idempotent.
  void Stop();

  // The verdict for `key` now, with usage counted.
  Validation Validate(std::string_view key) {
    return CheckAndCount(keys_, usage_->counter(), key, rejecting());
  }
  // Synced, and the authority confirmed our revision within max_staleness.
  bool fresh() const;
  // True while validation must answer UNKNOWN (stale under kReject).
  bool rejecting() const { return options_.stale_policy == StalePolicy::kReject && !fresh(); }

  const FollowerOptions& options() const { return options_; }
  const std::string& sidecar_id() const { return options_.sidecar_id; }
  const KeySet& keys() const { return keys_; }
  UsageCounter& usage() { return usage_->counter(); }
  SyncClient::State sync_state() const { return sync_->state(); }
  // Ends the current watch stream; the follower resumes (for tests).
  void Reconnect() { sync_->Reconnect(); }
  // Gauges and counters of the sync and the state file.
  void AddMetrics(Registry& registry);

 private:
  explicit Follower(FollowerOptions options) : options_(std::move(options)) {}
  // Loads options_.state_file into keys_ and the sync client, if it holds a
  // usable state; a bad file is logged and left alone.
  void LoadStateFile();
  // Saves the key set when it (or its confirmation) changed since the last
  // save; a failure is logged and counted, and the previous file stays.
  void SaveStateIfChanged();

  FollowerOptions options_;
  KeySet keys_;
  std::unique_ptr<UsageReporter> usage_;
  std::unique_ptr<SyncClient> sync_;

  std::atomic<bool> stopped_{false};
  std::unique_ptr<Periodic> saver_;  // SaveStateIfChanged every state_interval
  // What the state file holds now: (store id, revision, snapshots, confirmed).
  // Only the saver thread, then Stop, touch it.
  std::tuple<std::string, uint64_t, uint64_t, absl::Time> saved_;
  std::atomic<uint64_t> state_saves_{0};
  std::atomic<uint64_t> state_save_failures_{0};
};

}  // namespace latchkey

#endif  // LATCHKEY_SIDECAR_FOLLOWER_H_
