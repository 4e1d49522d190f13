// One Watch call's message flow, apart from gRPC: a snapshot (shared with the
// streams that begin one together, authority/fanout/shared_snapshots.h) and the
// events since, or a replay of retained events, then live events from the
// hub, written one at a time to a WatchSink. sync_service.cc adapts it to a gRPC write reactor;
// tests drive it through a sink of their own (tests/authority/fanout/watch_stream_test.cc), which
// is how its concurrency runs under ThreadSanitizer without gRPC's uninstrumented internals in the
// way.
#ifndef LATCHKEY_AUTHORITY_FANOUT_WATCH_STREAM_H_
#define LATCHKEY_AUTHORITY_FANOUT_WATCH_STREAM_H_

#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "authority/fanout/event_hub.h"
#include "authority/fanout/shared_snapshots.h"
#include "authority/fanout/wire_response.h"
#include "authority/store/key_store.h"
#include "common/mutex.h"
#include "common/work_queue.h"
#include "latchkey/v1/key_sync.pb.h"

namespace latchkey {

// Where a WatchStream writes. Implementations start the write and report its
// completion through WatchStream::OnWriteDone, from any thread.
class WatchSink {
 public:
  virtual ~WatchSink() = default;
  // Starts writing `message` (an encoded WatchResponse, authority/fanout/wire_response.h),
  // which stays valid until OnWriteDone. Never called while a write is
  // outstanding, nor after End.
  virtual void Write(const grpc::ByteBuffer* message) = 0;
  // Ends the call with `status`. Called exactly once, with no write
  // outstanding; nothing is written after it. The stream keeps no copy of
  // `status` (nor anything else it would release later), so the sink may let
  // the stream be destroyed from here on, on any thread. A sink that keeps
  // `status` moves it: the argument is destroyed after End returns, on the
  // stream's thread.
  virtual void End(absl::Status status) = 0;
};

// Thread-safe: Deliver and Close (from the hub), OnWriteDone and Cancel (from
// the sink's side) may all race. Store reads (the snapshot and the replay)
// run only on a `store_work` thread. The stream ends with:
//   Close's status      the authority is stopping (UNAVAILABLE), the caller's
//                       principal was deleted (UNAUTHENTICATED)
//   the admit status    admit (see Start) refused the caller
//   Cancel's status     the client went away (CANCELLED) or closed its side
//                       of a Sync call (OK)
//   CANCELLED           a write failed (the client is gone)
//   RESOURCE_EXHAUSTED  the client fell more than `queue_limit` messages behind
//   the store's status  a snapshot or replay read failed
//   INTERNAL            a gap in the revisions heard from the hub (a bug)
class WatchStream final : public Subscriber {
 public:
  // Everything passed in must outlive the stream. `principal_id` opened it
  // (EventHub::ClosePrincipal); `sidecar_id` is only named in logs;
  // `session`, when given, is set on the first message the stream sends
  // (WatchResponse.session).
  WatchStream(KeyStore* store, SharedSnapshots* snapshots, EventHub* hub, WorkQueue* store_work,
              WatchSink* sink, std::string principal_id, std::string sidecar_id, size_t queue_limit,
              std::string session = "");
  // Leaves the hub. Destroy only after the sink has ended the call and every
  // OnWriteDone and Cancel has returned.
  ~WatchStream() override;
  WatchStream(const WatchStream&) = delete;
  WatchStream& operator=(const WatchStream&) = delete;

  // Subscribes to the hub and begins: a replay when `req` resumes from a
  // revision this store still retains, otherwise a snapshot. `admit`, when
  // given, runs once the stream is in the hub and before anything is sent; a
  // status other than OK ends the stream with it. (It closes the window in
  // which a principal deleted between authenticating the call and joining
  // the hub would be missed by EventHub::ClosePrincipal.)
  using Admit = absl::AnyInvocable<absl::Status() &&>;
  void Start(const v1::WatchRequest& req, Admit admit = nullptr);

  // The sink finished the write it was given; `ok` is false when the client
  // is gone.
  void OnWriteDone(bool ok);
  // The client went away, or (with another status) ended its side.
  void Cancel(absl::Status why = absl::CancelledError("cancelled"));

  // Subscriber.
  void Deliver(const SharedResponse& message) override;
  void Close(const absl::Status& why) override;
  const std::string& principal_id() const override { return principal_id_; }

 private:
  enum class Phase { kSnapshot, kReplay, kLive };

  void EndWith(absl::Status status);
  void Pump();
  void Drive();
  absl::Status Begin(const v1::WatchRequest& req);
  absl::StatusOr<SharedResponse> Next();
  absl::StatusOr<SharedResponse> Snapshot();
  absl::StatusOr<SharedResponse> Replay();
  absl::StatusOr<SharedResponse> Live();
  v1::WatchResponse NewMessage() const;
  void GoLive();

  // Constant after construction.
  KeyStore* const store_;
  SharedSnapshots* const snapshots_;
  EventHub* const hub_;
  WorkQueue* const store_work_;
  WatchSink* const sink_;
  const std::string principal_id_;
  const std::string sidecar_id_;
  const size_t queue_limit_;

  // Concurrency: one thread at a time holds the "claim" (claimed_) and with
  // it the writer state below; it holds it from choosing a message until that
  // write completes. Store reads happen only under the claim, never under mu_
  // (the hub delivers while the store's publish lock is held), and only on a
  // store_work thread: a holder that needs the store on any other thread
  // hands the claim to a store_work task and returns. A Deliver that finds the
  // claim taken leaves a kick, so no wakeup is lost. Every Write and End is
  // issued under the claim with no write outstanding.

  // Owned by the holder of the claim.
  Phase phase_ = Phase::kLive;
  uint64_t sent_ = 0;  // last revision sent or covered by the snapshot
  // Set on the first message, then let go: a stream held for good keeps no
  // copy of what receipts already hold.
  std::string session_;
  std::unique_ptr<SnapshotReader> snapshot_;
  std::vector<v1::KeyEvent> replay_;  // a page of the store's events
  size_t replayed_ = 0;               // of replay_, sent

  Mutex mu_;
  bool claimed_ ABSL_GUARDED_BY(mu_) = false;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;  // work arrived while claimed
  bool live_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;  // End issued
  // From the hub. A list, not a deque: an empty std::deque holds a 512-byte
  // block, which 10,000 idle streams would each keep.
  std::list<SharedResponse> queue_ ABSL_GUARDED_BY(mu_);
  SharedResponse current_ ABSL_GUARDED_BY(mu_);  // being written
  // Why the stream ends. Moved out to the sink's End, and left engaged so
  // that nothing replaces it.
  std::optional<absl::Status> end_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_FANOUT_WATCH_STREAM_H_
