// Snapshots shared by the streams that begin one at the same revision.
//
// A burst of sidecars starting together (a rolling restart, a new node pool)
// all snapshot the same state. The first stream that needs a chunk reads and
// encodes it (SidecarSnapshot, WireResponse); every other stream reading that
// snapshot writes the same bytes. So a burst costs the authority about one
// snapshot's reading and encoding, plus each stream's writes.
//
// A stream joins the snapshot being read when it is at most 1,000 revisions
// behind the head and the events since are retained; the stream replays those
// after the snapshot (WatchStream). Otherwise it begins a new snapshot, which
// later streams join. A snapshot keeps every chunk read until its last reader
// is done: about 90 bytes per key, for one snapshot at a time in a burst, in
// place of a chunk of up to 1 MiB per stream being read.
#ifndef LATCHKEY_AUTHORITY_FANOUT_SHARED_SNAPSHOTS_H_
#define LATCHKEY_AUTHORITY_FANOUT_SHARED_SNAPSHOTS_H_

#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "authority/fanout/wire_response.h"
#include "authority/store/key_store.h"
#include "common/mutex.h"

namespace latchkey {

class SharedSnapshot;

// One stream's place in a shared snapshot. Not thread-safe: one stream reads
// it, one message at a time.
class SnapshotReader {
 public:
  explicit SnapshotReader(std::shared_ptr<SharedSnapshot> snapshot);
  ~SnapshotReader();
  SnapshotReader(const SnapshotReader&) = delete;
  SnapshotReader& operator=(const SnapshotReader&) = delete;

  uint64_t revision() const;
  // The next message: the snapshot's chunks, then its end marker. Reads the
  // store when no stream has read this chunk yet, so call it on a thread that
  // may block on the store.
  absl::StatusOr<SharedResponse> Next();
  // True once Next returned the end marker.
  bool finished() const { return finished_; }

 private:
  const std::shared_ptr<SharedSnapshot> snapshot_;
  size_t next_ = 0;  // the index of the message Next returns
  bool finished_ = false;
};

// Safe for concurrent access from multiple threads. The store must outlive it
// and every reader it made.
class SharedSnapshots {
 public:
  explicit SharedSnapshots(KeyStore& store) : store_(store) {}

  // A reader of the snapshot being read, or of a new one at the store's head
  // revision. Reads the store: call it on a thread that may block on it.
  std::unique_ptr<SnapshotReader> Begin();

  // Snapshots begun (each read from the store once), since construction.
  uint64_t begun() const;

 private:
  KeyStore& store_;

  mutable Mutex mu_;
  std::weak_ptr<SharedSnapshot> current_ ABSL_GUARDED_BY(mu_);  // the last one begun
  uint64_t begun_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_FANOUT_SHARED_SNAPSHOTS_H_
