// The sidecar's --state-file: its key set saved to disk so that a pod
// restarted while the authority is unreachable starts with the keys it knew
// instead of answering UNKNOWN to everything.
//
// The file holds digests, ids and states, never a key value, with the store
// id, the revision applied, when the authority last confirmed it, and the
// receipts session. Layout: the magic "LKSTATE1", the SHA-256 of the body,
// the body (sidecar/internal/state.proto). It is written with
// WritePrivateFile (common/files.h): mode 0600, a temporary file, fsync,
// rename, fsync of the directory, so a crash leaves the old file or the new
// one.
#ifndef LATCHKEY_SIDECAR_STATE_FILE_H_
#define LATCHKEY_SIDECAR_STATE_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "sidecar/key_set.h"

namespace latchkey {

// Where a saved key set stands.
struct SavedState {
  std::string store_id;
  uint64_t revision = 0;
  absl::Time confirmed = absl::InfinitePast();
  std::string session;
};

// The file's bytes for `keys` standing at `at`.
std::string EncodeState(const KeySet& keys, const SavedState& at);
// Writes EncodeState(keys, at) to `path`.
absl::Status SaveState(const std::string& path, const KeySet& keys, const SavedState& at);

// Reads `path` into `keys`. NOT_FOUND when there is no file; DATA_LOSS when it
// is not a whole state file (wrong magic, checksum, or body); INVALID_ARGUMENT
// when an entry in it is malformed; FAILED_PRECONDITION for a link or a file
// others may read (ReadPrivateFile).
absl::StatusOr<SavedState> LoadState(const std::string& path, KeySet::Builder& keys);

}  // namespace latchkey

#endif  // LATCHKEY_SIDECAR_STATE_FILE_H_
