// What a sidecar starts from: the state at one revision, projected to what
// sidecars hold (docs/design.md, "Revisions and the watch stream"): the projects whose API
// access is off and every key's digests. The keys come from the sidecar keys
// rows the core keeps beside the key records (authority/core/sidecar_keys.h),
// copied into chunks as they are stored: a snapshot parses no key record.
#ifndef LATCHKEY_AUTHORITY_FANOUT_SIDECAR_SNAPSHOT_H_
#define LATCHKEY_AUTHORITY_FANOUT_SIDECAR_SNAPSHOT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "authority/store/key_store.h"

namespace latchkey {

// Reads one store snapshot in chunks, each under 1 MiB, and lets the store
// snapshot go once it has read everything. Not thread-safe; the store must
// outlive it.
class SidecarSnapshot {
 public:
  // At the store's head revision.
  explicit SidecarSnapshot(KeyStore& store);

  uint64_t revision() const { return revision_; }

  // Sets `chunk` to the next part, an encoded v1::SnapshotChunk: first the
  // disabled projects, then keys. False (and `chunk` untouched) once
  // everything was read. DATA_LOSS for a stored row that is not one.
  absl::StatusOr<bool> Next(std::string& chunk);

 private:
  enum class Part { kProjects, kKeys, kDone };
  absl::Status NextProjects(std::string& chunk);
  absl::StatusOr<bool> NextKeys(std::string& chunk);

  KeyStore& store_;
  std::unique_ptr<StoreSnapshot> snapshot_;  // released once everything was read
  const uint64_t revision_;
  Part part_ = Part::kProjects;
  std::string cursor_;  // scan position within the part
};

// Whether `row` is a sequence of v1::SnapshotChunk.entries fields, as every
// sidecar keys row is: its top level checked, its entries not parsed.
bool IsSidecarKeysRow(std::string_view row);

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_FANOUT_SIDECAR_SNAPSHOT_H_
