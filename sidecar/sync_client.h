// Follows the authority's KeySync.Sync stream into a KeySet.
//
// Events and progress marks are applied where gRPC delivers them, on its
// callback thread, one revision at a time: no thread wakes up for a revision
// but the one that read it. Snapshots go to the client's own reader thread,
// which collects one in a KeySet::Builder and swaps it in at its end marker
// without holding up gRPC's threads (the Validate server's too) for the
// seconds a million keys take; the messages after a snapshot's follow it
// there until the reader has caught up, so every message is handled in
// order and one at a time.
//
// The client enforces the watch contract on what it receives (ordered, no
// duplicates, no gaps, never backwards within a store id) and, when it is
// broken, drops the stream and resyncs by snapshot. It reconnects with
// jittered exponential backoff, resuming after its applied revision; a new
// store id means a full resync. It acknowledges applied revisions on the
// same stream (the latest one only, never blocking the reader), so the
// authority can issue revocation receipts.
//
// A SyncClient is safe for concurrent access from multiple threads.
#ifndef LATCHKEY_SIDECAR_SYNC_CLIENT_H_
#define LATCHKEY_SIDECAR_SYNC_CLIENT_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/grpc_client.h"
#include "common/mutex.h"
#include "latchkey/v1/key_sync.grpc.pb.h"
#include "sidecar/key_set.h"
#include "sidecar/watch_message.h"

namespace latchkey {

struct SyncOptions {
  std::shared_ptr<grpc::Channel> channel;
  std::string token;
  std::string sidecar_id;
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(5);
  // Called after each snapshot (true) or event (false) is applied, with its
  // revision, on the thread that applied it (a gRPC callback thread for
  // events). For tests and metrics; must be quick and must not block.
  std::function<void(uint64_t revision, bool snapshot)> on_applied;
};

class SyncClient {
 public:
  struct State {
    bool synced = false;  // a full snapshot has been applied
    uint64_t applied = 0;
    std::string store_id;
    absl::Time last_confirmed = absl::InfinitePast();  // authority confirmed we were current
    uint64_t snapshots = 0;
    uint64_t events = 0;
    uint64_t reconnects = 0;
    uint64_t contract_violations = 0;
    bool restored = false;  // started from a saved key set (Restore)
    // The wait before the latest reconnect. It starts over at min_backoff
    // when a stream answers, unless the stream before broke the contract:
    // an authority that answers and then breaks it is not retried at once.
    absl::Duration backoff = absl::ZeroDuration();
  };

  SyncClient(SyncOptions options, KeySet* keys);
  ~SyncClient();  // Stop()

  // Before Start: the key set already holds what was applied up to `revision`
  // of `store_id` (a state file), confirmed current at `confirmed`. The client
  // resumes from there, by replay when the authority still has the events, and
  // under `session` in receipts.
  void Restore(const std::string& store_id, uint64_t revision, absl::Time confirmed,
               const std::string& session);
  void Start();
  // Tells the authority this sidecar is leaving, ends the stream and the
  // reader thread. Idempotent.
  void Stop();
  // Ends the current stream; the client reconnects and resumes.
  void Reconnect();

  State state() const;
  // The receipts session of the latest stream ("" before the first).
  std::string session() const;

 private:
  using Stream = BidiStream<v1::SyncRequest, WatchMessage>;

  void ReadLoop();
  // The open stream's quick path (BidiStream::Quick): takes events and
  // progress marks on gRPC's thread unless the reader has messages in hand.
  bool TakeQuick(const WatchMessage& msg) ABSL_LOCKS_EXCLUDED(mu_);
  // Handles one message of the open stream and acknowledges it; false when
  // it broke the contract (the stream is then cancelled).
  bool Receive(const WatchMessage& msg) ABSL_LOCKS_EXCLUDED(mu_);
  // Sends the latest applied revision when the authority has not been told
  // it on this stream.
  void Acknowledge() ABSL_LOCKS_EXCLUDED(mu_);
  // Applies one message; an error ends the stream.
  absl::Status Handle(const WatchMessage& msg) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status HandleEvent(const v1::WatchResponse& msg);
  absl::Status HandleSnapshotEnd(const v1::WatchResponse& msg);
  absl::Status HandleProgress(const v1::WatchResponse& msg);
  void MarkApplied(uint64_t revision, bool snapshot);
  absl::Duration NextBackoff(absl::Duration previous);

  // Constant after construction.
  const SyncOptions options_;
  KeySet* const keys_;
  // Sync, read as WatchMessages (sidecar/watch_message.h).
  grpc::TemplatedGenericStub<v1::SyncRequest, WatchMessage> stub_;

  // Touched by whichever thread handles the open stream's messages: one at a
  // time, in order (reader_busy_ hands them over).
  std::unique_ptr<KeySet::Builder> building_;
  // Owned by the reader thread.
  std::mt19937_64 rng_{std::random_device{}()};

  mutable Mutex mu_;
  // Signalled when stopping_ or stream_ changes.
  CondVar changed_;
  State state_ ABSL_GUARDED_BY(mu_);
  uint64_t known_head_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t acked_ ABSL_GUARDED_BY(mu_) = 0;  // last sent on this stream; 0: none
  // The open stream's messages that went to the reader thread and are not
  // handled yet. While there are any, the quick path passes the next ones on
  // too, so they keep their order.
  int reader_busy_ ABSL_GUARDED_BY(mu_) = 0;
  bool answered_ ABSL_GUARDED_BY(mu_) = false;  // the open stream sent a message
  absl::Status broken_ ABSL_GUARDED_BY(mu_);    // how the open stream broke the contract
  // The receipts session the authority gave the latest stream. Kept across
  // reconnects so that a new stream takes this sidecar's place back.
  std::string session_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<Stream> stream_ ABSL_GUARDED_BY(mu_);  // the open one
  std::thread reader_;
};

}  // namespace latchkey

#endif  // LATCHKEY_SIDECAR_SYNC_CLIENT_H_
