// Snapshots shared by the streams that begin one at the same revision, and
// the last one kept for the streams that begin later.
//
// A burst of sidecars starting together (a rolling restart, a new node pool)
// all snapshot the same state. The first stream that needs a chunk reads and
// encodes it (SidecarSnapshot, WireResponse); every other stream reading that
// snapshot writes the same bytes. So a burst costs the authority about one
// snapshot's reading and encoding, plus each stream's writes.
//
// A stream joins the last snapshot begun when it is at most 1,000 revisions
// behind the head and the events since are retained; the stream replays those
// after the snapshot (WatchStream). Otherwise it begins a new snapshot, which
// later streams join. A snapshot keeps every chunk read until its last reader
// is done: about 80 bytes per key.
//
// Once a snapshot was read to its end, it is also kept after its last reader
// (up to `keep_bytes` of chunks), so that pods starting a few at a time, as a
// rolling restart with a small surge starts them, cost the authority only
// their writes rather than a reading of every key each. The kept one goes
// when a newer snapshot begins; its store snapshot went when its reading
// ended, so it holds no store version back.
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
class SharedSnapshots;

// One stream's place in a shared snapshot. Not thread-safe: one stream reads
// it, one message at a time.
class SnapshotReader {
 public:
  SnapshotReader(std::shared_ptr<SharedSnapshot> snapshot, SharedSnapshots* owner);
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
  SharedSnapshots* const owner_;  // told when the snapshot was read to its end
  size_t next_ = 0;               // the index of the message Next returns
  bool finished_ = false;
};

// Safe for concurrent access from multiple threads. The store must outlive it
// and every reader it made.
class SharedSnapshots {
 public:
  // Keeps the last snapshot read to its end when its chunks total at most
  // `keep_bytes` (0: keeps none).
  explicit SharedSnapshots(KeyStore& store, size_t keep_bytes = 0)
      : store_(store), keep_bytes_(keep_bytes) {}

  // A reader of the last snapshot begun, or of a new one at the store's head
  // revision. Reads the store: call it on a thread that may block on it.
  std::unique_ptr<SnapshotReader> Begin();

  // Snapshots begun (each read from the store once), since construction.
  uint64_t begun() const;
  // The chunks' bytes of the snapshot kept; 0 when none is.
  size_t kept_bytes() const;

 private:
  friend class SnapshotReader;
  // `snapshot` was read to its end marker.
  void Finished(const std::shared_ptr<SharedSnapshot>& snapshot);

  KeyStore& store_;
  const size_t keep_bytes_;

  mutable Mutex mu_;
  std::weak_ptr<SharedSnapshot> current_ ABSL_GUARDED_BY(mu_);  // the last one begun
  std::shared_ptr<SharedSnapshot> kept_ ABSL_GUARDED_BY(mu_);   // current_, once read
  uint64_t begun_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_FANOUT_SHARED_SNAPSHOTS_H_
