// Revocation receipts (docs/design.md, rule 11): which connected sidecars have
// applied a revision, and how long after its commit.
//
// The sync service reports commits, watch streams opening and closing, and
// sidecars' acknowledgements; GetPropagation reads a receipt. Memory is
// bounded: commit times and acknowledgements are kept for the most recent
// revisions only (older receipts still count sidecars, without delays).
//
// A PropagationTracker is safe for concurrent access from multiple threads.
#ifndef LATCHKEY_AUTHORITY_PROPAGATION_H_
#define LATCHKEY_AUTHORITY_PROPAGATION_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/mutex.h"
#include "latchkey/v1/key_admin.pb.h"

namespace latchkey {

class PropagationTracker {
 public:
  static constexpr size_t kHistory = 4096;  // revisions whose timings are kept

  void Committed(uint64_t revision, absl::Time at);
  // A watch stream from `sidecar_id` opened or closed. Streams are counted, so
  // a sidecar that reconnects before its old stream closes stays connected.
  void Connected(const std::string& sidecar_id);
  void Disconnected(const std::string& sidecar_id);
  void Acknowledged(const std::string& sidecar_id, uint64_t applied_revision, absl::Time at);

  // The receipt for `revision`. INVALID_ARGUMENT for 0 or a revision after
  // `head` (it has not happened).
  absl::StatusOr<v1::GetPropagationResponse> Receipt(uint64_t revision, uint64_t head) const;

 private:
  struct Sidecar {
    int streams = 0;
    uint64_t applied = 0;
    // (applied revision, when acknowledged), increasing, at most kHistory.
    std::deque<std::pair<uint64_t, absl::Time>> acks;
  };

  mutable Mutex mu_;
  std::map<uint64_t, absl::Time> commit_times_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Sidecar> sidecars_ ABSL_GUARDED_BY(mu_);
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_PROPAGATION_H_
