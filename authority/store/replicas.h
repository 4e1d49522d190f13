// What the replicas of one shared store tell each other while they live,
// outside the revision log: receipts (docs/design.md, "Receipts across
// replicas") and who does a duty. Each store provides one
// (KeyStore::replicas()); a store one process owns has no other replicas
// and gives a LoneReplica.
#ifndef LATCHKEY_AUTHORITY_STORE_REPLICAS_H_
#define LATCHKEY_AUTHORITY_STORE_REPLICAS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace latchkey {

class Replicas {
 public:
  virtual ~Replicas() = default;

  // This replica's summary of the sidecars it serves, kept only while the
  // replica lives (etcd: bound to a lease). Called often: only a changed
  // value is written, and the rest is kept alive.
  virtual absl::Status Share(std::string_view summary) = 0;
  // What every other live replica shared.
  virtual absl::StatusOr<std::vector<std::string>> SharedByOthers() const = 0;

  // Whether this process is the one that does `duty` now: one replica holds
  // a duty at a time, while it keeps asking (at least every few seconds);
  // once it stops (it died, or lost its cluster) another one that asks
  // takes it over.
  virtual absl::StatusOr<bool> Lead(std::string_view duty) = 0;
};

// The replicas of a store one process owns: this one alone. It keeps what it
// is told to share to itself and does every duty.
class LoneReplica final : public Replicas {
 public:
  absl::Status Share(std::string_view /*summary*/) override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<std::string>> SharedByOthers() const override {
    return std::vector<std::string>{};
  }
  absl::StatusOr<bool> Lead(std::string_view /*duty*/) override { return true; }
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_STORE_REPLICAS_H_
