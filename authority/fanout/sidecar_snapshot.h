// What a sidecar starts from: the state at one revision, projected to what
// sidecars hold (docs/design.md, "Revisions and the watch stream"): the projects whose API
// access is off and every key's digests (SidecarEntries). The projection is
// the core's; the watch stream only sends the chunks.
#ifndef LATCHKEY_AUTHORITY_FANOUT_SIDECAR_SNAPSHOT_H_
#define LATCHKEY_AUTHORITY_FANOUT_SIDECAR_SNAPSHOT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "authority/store/key_store.h"
#include "latchkey/v1/key_sync.pb.h"

namespace latchkey {

// Reads one store snapshot in chunks, each under 1 MiB. Not thread-safe; the
// store must outlive it.
class SidecarSnapshot {
 public:
  // At the store's head revision.
  explicit SidecarSnapshot(KeyStore& store);

  uint64_t revision() const { return snapshot_->revision(); }

  // Fills `chunk` with the next part: first the disabled projects, then keys.
  // False (and `chunk` untouched) once everything was read.
  absl::StatusOr<bool> Next(v1::SnapshotChunk& chunk);

 private:
  enum class Part { kProjects, kKeys, kDone };
  absl::Status NextProjects(v1::SnapshotChunk& chunk);
  absl::StatusOr<bool> NextKeys(v1::SnapshotChunk& chunk);

  KeyStore& store_;
  const std::unique_ptr<StoreSnapshot> snapshot_;
  Part part_ = Part::kProjects;
  std::string cursor_;  // scan position within the part
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_FANOUT_SIDECAR_SNAPSHOT_H_
