#include "authority/fanout/watch_stream.h"

#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace latchkey {
namespace {

constexpr size_t kReplayPage = 512;

}  // namespace

WatchStream::WatchStream(KeyStore* store, SharedSnapshots* snapshots, EventHub* hub,
                         WorkQueue* store_work, WatchSink* sink, std::string principal_id,
                         std::string sidecar_id, size_t queue_limit, std::string session)
    : store_(store),
      snapshots_(snapshots),
      hub_(hub),
      store_work_(store_work),
      sink_(sink),
      principal_id_(std::move(principal_id)),
      sidecar_id_(std::move(sidecar_id)),
      queue_limit_(queue_limit),
      session_(std::move(session)) {}

WatchStream::~WatchStream() { hub_->Remove(this); }

void WatchStream::Start(const v1::WatchRequest& req, Admit admit) {
  {
    MutexLock lock(&mu_);
    claimed_ = true;
  }
  // From here on live events queue up, before the snapshot or replay is read,
  // so none is missed; those at or below the last revision sent are dropped.
  hub_->Add(this);
  store_work_->Post([this, req, admit = std::move(admit)]() mutable {
    absl::Status begun = admit ? std::move(admit)() : absl::OkStatus();
    if (begun.ok()) begun = Begin(req);
    if (!begun.ok()) EndWith(std::move(begun));
    Drive();
  });
}

void WatchStream::Deliver(const SharedResponse& message) {
  {
    MutexLock lock(&mu_);
    if (ended_ || end_status_) return;
    if (message->is_progress() && (!live_ || !queue_.empty())) return;
    if (queue_.size() >= queue_limit_) {
      queue_.clear();  // the memory goes now, not when the client reads
      end_status_ =
          absl::ResourceExhaustedError("watcher fell too far behind; resume from your revision");
      spdlog::warn("watch from sidecar {} fell behind by {} messages; ending it", sidecar_id_,
                   queue_limit_);
    } else {
      queue_.push_back(message);
    }
  }
  Pump();
}

void WatchStream::Close(const absl::Status& why) {
  EndWith(Unshared(why));  // `why` is the hub caller's, shared by every stream
  Pump();
}

void WatchStream::OnWriteDone(bool ok) {
  {
    MutexLock lock(&mu_);
    current_.reset();
    if (!ok && !end_status_) end_status_ = absl::CancelledError("gone");
    claimed_ = false;
  }
  Pump();
}

void WatchStream::Cancel(absl::Status why) {
  EndWith(std::move(why));
  Pump();
}

void WatchStream::EndWith(absl::Status status) {
  MutexLock lock(&mu_);
  if (!end_status_) end_status_ = std::move(status);
}

// Takes the claim if it is free; otherwise leaves a kick for its holder.
void WatchStream::Pump() {
  {
    MutexLock lock(&mu_);
    if (claimed_ || ended_) {
      kicked_ = true;
      return;
    }
    claimed_ = true;
  }
  Drive();
}

// Under the claim: writes the next message, ends the call, or gives the claim
// up.
void WatchStream::Drive() {
  if (phase_ != Phase::kLive && !WorkQueue::OnWorkerThread()) {
    // The snapshot or replay reads the store: not on the caller's thread.
    store_work_->Post([this] { Drive(); });
    return;
  }
  for (;;) {
    bool ending;
    {
      MutexLock lock(&mu_);
      kicked_ = false;
      ending = end_status_.has_value();
    }
    SharedResponse next;
    absl::Status failed;  // Next() could not make the next message
    if (!ending) {
      absl::StatusOr<SharedResponse> made = Next();
      if (made.ok()) {
        next = *std::move(made);
      } else {
        failed = Unshared(made.status());  // the store may keep the original
      }
    }
    if (next && !session_.empty()) {
      // Live messages are shared by every stream: the first one gets the
      // session as a suffix of its own.
      next = next->WithSession(session_);
      std::string().swap(session_);
    }
    // What the sink is handed leaves this frame first: once End or Write is
    // issued, the sink's owner may destroy the stream on another thread, so
    // nothing of it (not even a reference count) may be released afterwards.
    absl::Status end;
    const grpc::ByteBuffer* write = nullptr;
    enum class Act { kEnd, kWrite, kAgain, kIdle } act;
    {
      MutexLock lock(&mu_);
      if (ending || !failed.ok()) {
        ended_ = true;
        end = ending ? std::move(*end_status_) : std::move(failed);
        act = Act::kEnd;
      } else if (next) {
        write = &next->bytes();
        current_ = std::move(next);  // keeps `write` alive until OnWriteDone
        act = Act::kWrite;
      } else if (kicked_) {
        act = Act::kAgain;
      } else {
        claimed_ = false;
        act = Act::kIdle;
      }
    }
    switch (act) {
      case Act::kEnd:
        sink_->End(std::move(end));
        return;
      case Act::kWrite:
        sink_->Write(write);  // the claim passes to OnWriteDone
        return;
      case Act::kAgain:
        continue;
      case Act::kIdle:
        return;
    }
  }
}

// Under the claim. Chooses between a replay and a snapshot.
absl::Status WatchStream::Begin(const v1::WatchRequest& req) {
  const bool same_store = req.store_id().empty() || req.store_id() == store_->store_id();
  if (req.after_revision() > 0 && same_store) {
    // Probe: replay when the events are retained, snapshot when trimmed.
    absl::StatusOr<std::vector<v1::KeyEvent>> probe = store_->EventsAfter(req.after_revision(), 0);
    if (probe.ok()) {
      phase_ = Phase::kReplay;
      sent_ = req.after_revision();
      return absl::OkStatus();
    }
    if (!absl::IsOutOfRange(probe.status())) return probe.status();
  }
  phase_ = Phase::kSnapshot;
  snapshot_ = snapshots_->Begin();
  sent_ = snapshot_->revision();
  return absl::OkStatus();
}

// Under the claim: the next message to send, or null when there is none yet.
absl::StatusOr<SharedResponse> WatchStream::Next() {
  switch (phase_) {
    case Phase::kSnapshot:
      return Snapshot();
    case Phase::kReplay:
      return Replay();
    case Phase::kLive:
      return Live();
  }
  return nullptr;
}

v1::WatchResponse WatchStream::NewMessage() const {
  v1::WatchResponse m;
  m.set_store_id(store_->store_id());
  return m;
}

void WatchStream::GoLive() {
  phase_ = Phase::kLive;
  MutexLock lock(&mu_);
  live_ = true;
}

absl::StatusOr<SharedResponse> WatchStream::Snapshot() {
  absl::StatusOr<SharedResponse> m = snapshot_->Next();
  if (!m.ok()) return m.status();
  if (snapshot_->finished()) {
    // A snapshot shared with streams that began earlier may be behind the
    // head: the events since come from the store, then live ones.
    snapshot_.reset();
    phase_ = Phase::kReplay;
  }
  return m;
}

absl::StatusOr<SharedResponse> WatchStream::Replay() {
  if (replayed_ == replay_.size()) {
    absl::StatusOr<std::vector<v1::KeyEvent>> events = store_->EventsAfter(sent_, kReplayPage);
    if (!events.ok()) return events.status();  // trimmed meanwhile: the sidecar resumes
    if (events->empty()) {
      std::vector<v1::KeyEvent>().swap(replay_);  // a live stream keeps no page
      replayed_ = 0;
      GoLive();
      return Live();
    }
    replay_ = *std::move(events);
    replayed_ = 0;
  }
  v1::WatchResponse m = NewMessage();
  *m.mutable_event() = std::move(replay_[replayed_++]);
  sent_ = m.event().revision();
  return WireResponse::Encode(m);
}

absl::StatusOr<SharedResponse> WatchStream::Live() {
  MutexLock lock(&mu_);
  while (!queue_.empty()) {
    SharedResponse m = std::move(queue_.front());
    queue_.pop_front();
    if (m->is_progress()) return m;
    const uint64_t rev = m->event_revision();
    if (rev <= sent_) continue;  // already sent by the snapshot or replay
    if (rev != sent_ + 1) {
      return absl::InternalError(StrCat("watch gap: sent ", sent_, ", next ", rev));
    }
    sent_ = rev;
    return m;
  }
  return nullptr;
}

}  // namespace latchkey
