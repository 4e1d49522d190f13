// Revocation receipts (docs/design.md, rule 11): which sidecars have applied
// a revision, and how long after its commit.
//
// Every Watch stream opens a session, an unguessable id handed to the sidecar
// in the stream's first message; acknowledgements count only through the
// session they name, and only from the principal that opened it, so a caller
// cannot claim another sidecar applied something. A session is one entry in
// receipts even when two streams give the same sidecar id. When its stream
// ends without a goodbye (Left), the entry stays, as disconnected and missing
// from later revisions, until `forget_after`: a partitioned or killed pod
// that may still be serving keys is not silently dropped from receipts. A
// sidecar that reconnects names its old session and takes its entry back.
//
// Memory is bounded: commit times and each revision's slowest delay are kept
// for the newest kHistory revisions only (older receipts still count
// sidecars, without delays), a sidecar's entry holds its latest applied
// revision and no history (10,000 sidecars cost the same after a million
// revisions as after one), and at most `max_disconnected` disconnected
// entries are kept (the oldest is forgotten first). An acknowledgement sets
// the slowest delay of every kept revision it newly covers, so a delay once
// seen stays in the receipt after its sidecar leaves.
//
// A PropagationTracker is safe for concurrent access from multiple threads.
#ifndef LATCHKEY_AUTHORITY_FANOUT_PROPAGATION_H_
#define LATCHKEY_AUTHORITY_FANOUT_PROPAGATION_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "authority/internal/records.pb.h"
#include "authority/store/key_store.h"
#include "common/mutex.h"
#include "latchkey/v1/key_admin.pb.h"

namespace latchkey {

class PropagationTracker {
 public:
  static constexpr size_t kHistory = 4096;  // revisions whose timings are kept

  // One open Watch stream: its session, and which of the streams that held
  // the session it is.
  struct Stream {
    std::string session;
    uint64_t generation = 0;
  };

  explicit PropagationTracker(absl::Duration forget_after = absl::Minutes(10),
                              size_t max_disconnected = 10000);

  void Committed(uint64_t revision, absl::Time at);

  // A Watch stream opened. It takes over `resume_session` when that names a
  // session opened by the same principal with the same sidecar id; otherwise
  // it gets a new session.
  Stream Opened(const std::string& principal_id, const std::string& sidecar_id,
                const std::string& resume_session, absl::Time now);
  // The stream ended. Unless the sidecar left, or a newer stream has taken
  // the session over, the entry stays as disconnected.
  void Closed(const Stream& stream, absl::Time now);

  // FAILED_PRECONDITION for a session `principal_id` did not open (or one
  // already forgotten). A revision below one acknowledged before is ignored.
  absl::Status Acknowledged(const std::string& principal_id, const std::string& session,
                            uint64_t applied_revision, absl::Time at);
  // A clean shutdown: the session's entry leaves receipts at once.
  absl::Status Left(const std::string& principal_id, const std::string& session);

  // The receipt for `revision`, counting this tracker's sidecars and those
  // other replicas share. INVALID_ARGUMENT for 0 or a revision after `head`
  // (it has not happened).
  absl::StatusOr<v1::GetPropagationResponse> Receipt(
      uint64_t revision, uint64_t head, absl::Time now,
      const std::vector<internal::SharedReceipts>& others = {}) const;

  // The receipt for `revision` (of a store whose head is `head`) across
  // every one of `replicas`: this tracker's sidecars and what the others
  // shared (Replicas::SharedByOthers).
  absl::StatusOr<v1::GetPropagationResponse> ReceiptAcrossReplicas(uint64_t revision, uint64_t head,
                                                                   const Replicas& replicas,
                                                                   absl::Time now) const;

  // What other replicas need of this tracker for their receipts: every
  // sidecar's newest acknowledgement, and the slowest delays of the newest
  // kSharedDelays revisions (older revisions are counted without delays).
  static constexpr size_t kSharedDelays = 32;
  internal::SharedReceipts Share(absl::Time now) const;
  // Changes whenever what Share returns may have.
  uint64_t version() const;

 private:
  struct Entry {
    std::string principal_id;
    std::string sidecar_id;
    uint64_t generation = 0;  // of the stream holding the session
    std::optional<absl::Time> disconnected;
    uint64_t applied = 0;
  };
  // One of the newest kHistory revisions: when it was committed, and the
  // longest any sidecar took from then to acknowledge it (or a later one).
  struct Timing {
    absl::Time committed;
    absl::Duration slowest = absl::ZeroDuration();
  };

  Entry* Find(const std::string& principal_id, const std::string& session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops disconnected entries older than forget_after_, and the oldest
  // beyond max_disconnected_.
  void Forget(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration forget_after_;
  const size_t max_disconnected_;

  mutable Mutex mu_;
  uint64_t generations_ ABSL_GUARDED_BY(mu_) = 0;
  mutable uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, Timing> timings_ ABSL_GUARDED_BY(mu_);  // by revision
  // Forgetting is done by readers too, so these are mutable.
  mutable absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // When each disconnected entry went away, oldest first.
  mutable std::set<std::pair<absl::Time, std::string>> disconnected_ ABSL_GUARDED_BY(mu_);
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_FANOUT_PROPAGATION_H_
