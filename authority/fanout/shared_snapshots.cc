#include "authority/fanout/shared_snapshots.h"

#include <string>
#include <vector>

#include "authority/fanout/sidecar_snapshot.h"

namespace latchkey {
namespace {

// How far behind the head a snapshot may be for a new stream to join it (the
// stream replays the events after it). Far below any sensible
// --event-retention; Begin checks the events are still there.
constexpr uint64_t kMaxJoinLag = 1000;

}  // namespace

// One snapshot, read once and handed to every stream that joined it.
class SharedSnapshot {
 public:
  explicit SharedSnapshot(KeyStore& store)
      : store_id_(store.store_id()), reader_(store), revision_(reader_.revision()) {}

  uint64_t revision() const { return revision_; }
  // The bytes of the messages read so far.
  size_t bytes() const {
    MutexLock lock(&mu_);
    return bytes_;
  }

  // Message `index`: a chunk or the end marker. Null past the end marker.
  absl::StatusOr<SharedResponse> Take(size_t index) {
    MutexLock lock(&mu_);
    while (index >= messages_.size()) {
      if (!failed_.ok()) return failed_;
      if (finished_) return nullptr;
      absl::StatusOr<SharedResponse> made = ReadNext();
      if (!made.ok()) {
        failed_ = made.status();
        return failed_;
      }
      bytes_ += (*made)->size();
      messages_.push_back(*std::move(made));
    }
    return messages_[index];
  }

 private:
  // The next chunk or the end marker, from the store.
  absl::StatusOr<SharedResponse> ReadNext() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string chunk;
    absl::StatusOr<bool> more = reader_.Next(chunk);
    if (!more.ok()) return more.status();
    if (*more) return WireResponse::EncodeSnapshotChunk(store_id_, std::move(chunk));
    v1::WatchResponse end;
    end.set_store_id(store_id_);
    end.mutable_snapshot_end()->set_revision(revision_);
    finished_ = true;
    return WireResponse::Encode(end);
  }

  const std::string store_id_;  // constant after construction

  mutable Mutex mu_;
  // The store is read under mu_: a stream that needs a chunk another stream
  // is reading waits for it rather than reading it again.
  SidecarSnapshot reader_ ABSL_GUARDED_BY(mu_);
  const uint64_t revision_;  // reader_'s; constant after construction
  std::vector<SharedResponse> messages_ ABSL_GUARDED_BY(mu_);  // read so far
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;                      // messages_' sizes
  bool finished_ ABSL_GUARDED_BY(mu_) = false;                 // the end marker was read
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
};

SnapshotReader::SnapshotReader(std::shared_ptr<SharedSnapshot> snapshot, SharedSnapshots* owner)
    : snapshot_(std::move(snapshot)), owner_(owner) {}

SnapshotReader::~SnapshotReader() = default;

uint64_t SnapshotReader::revision() const { return snapshot_->revision(); }

absl::StatusOr<SharedResponse> SnapshotReader::Next() {
  if (finished_) return nullptr;
  absl::StatusOr<SharedResponse> message = snapshot_->Take(next_);
  if (!message.ok() || *message == nullptr) return message;
  next_++;
  if ((*message)->is_snapshot_end()) {
    finished_ = true;
    owner_->Finished(snapshot_);
  }
  return message;
}

std::unique_ptr<SnapshotReader> SharedSnapshots::Begin() {
  MutexLock lock(&mu_);
  std::shared_ptr<SharedSnapshot> snapshot = current_.lock();
  const bool joinable = snapshot && store_.head_revision() - snapshot->revision() <= kMaxJoinLag &&
                        store_.EventsAfter(snapshot->revision(), 0).ok();
  if (!joinable) {
    kept_.reset();  // never two snapshots' chunks for one
    snapshot = std::make_shared<SharedSnapshot>(store_);
    current_ = snapshot;
    begun_++;
  }
  return std::make_unique<SnapshotReader>(std::move(snapshot), this);
}

void SharedSnapshots::Finished(const std::shared_ptr<SharedSnapshot>& snapshot) {
  MutexLock lock(&mu_);
  // Only the last one begun: an older one has readers left at most.
  if (snapshot != current_.lock() || snapshot->bytes() > keep_bytes_) return;
  kept_ = snapshot;
}

uint64_t SharedSnapshots::begun() const {
  MutexLock lock(&mu_);
  return begun_;
}

size_t SharedSnapshots::kept_bytes() const {
  MutexLock lock(&mu_);
  return kept_ ? kept_->bytes() : 0;
}

}  // namespace latchkey
