#include "authority/sync_service.h"

#include <deque>

#include "absl/time/clock.h"
#include "authority/admin_service.h"
#include "authority/internal/records.pb.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/status.h"
#include "common/strings.h"

namespace latchkey {
namespace {

constexpr size_t kReplayPage = 512;
constexpr size_t kSnapshotKeysPerChunk = 256;  // <= 256 * 17 entries * ~100 B: under 1 MiB
constexpr size_t kSnapshotProjectsPerChunk = 4096;
constexpr size_t kMaxSidecarIdChars = 128;

// One Watch call. Phases: a snapshot or a replay of retained events, then
// live events from the hub. The hub queues live events from the moment the
// stream subscribes, before the snapshot or replay is read, so none is
// missed; those at or below the last revision sent are dropped.
//
// Concurrency: one thread at a time holds the "claim" (claimed_) and with it
// the writer state (phase, cursor, replay); it holds it from choosing a
// message until that write completes. Store reads happen only under the
// claim, never under mu_ (the hub delivers while the store's publish lock is
// held), and only on a store_work thread: a holder of the claim on a gRPC
// callback thread that needs the store (before the live phase) hands the
// claim to a task on store_work and returns. A Deliver that finds the claim taken leaves a kick,
// so no wakeup is lost. Every StartWrite and Finish is issued under the
// claim with no write outstanding, so nothing is written after Finish.
// Deletes itself in OnDone.
class WatchStream final : public grpc::ServerWriteReactor<v1::WatchResponse>, public Subscriber {
 public:
  WatchStream(KeyStore* store, EventHub* hub, PropagationTracker* propagation,
              WorkQueue* store_work, std::string sidecar_id, size_t queue_limit)
      : store_(store),
        hub_(hub),
        propagation_(propagation),
        store_work_(store_work),
        sidecar_id_(std::move(sidecar_id)),
        queue_limit_(queue_limit) {}

  void Start(const v1::WatchRequest& req) {
    propagation_->Connected(sidecar_id_);
    {
      MutexLock lock(&mu_);
      claimed_ = true;
    }
    hub_->Add(this);  // from here on, live events queue up
    // Begin reads the store: on store_work, holding the claim.
    store_work_->Post([this, req] {
      absl::Status begun = Begin(req);
      if (!begun.ok()) End(ToGrpcStatus(begun));
      Drive();
    });
  }

  void Deliver(const SharedResponse& message) override {
    {
      MutexLock lock(&mu_);
      if (done_ || end_status_) return;
      if (message->has_progress() && (!live_ || !queue_.empty())) return;
      if (queue_.size() >= queue_limit_) {
        queue_.clear();  // the memory goes now, not when the client reads
        end_status_ = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   "watcher fell too far behind; resume from your revision");
        spdlog::warn("watch from sidecar {} fell behind by {} messages; ending it", sidecar_id_,
                     queue_limit_);
      } else {
        queue_.push_back(message);
      }
    }
    Pump();
  }

  void Close() override {
    End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "authority shutting down"));
    Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      MutexLock lock(&mu_);
      current_.reset();
      if (!ok && !end_status_) end_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "gone");
      claimed_ = false;
    }
    Pump();
  }

  void OnCancel() override {
    End(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
    Pump();
  }

  void OnDone() override {
    hub_->Remove(this);
    propagation_->Disconnected(sidecar_id_);
    delete this;
  }

 private:
  enum class Phase { kSnapshotProjects, kSnapshotKeys, kReplay, kLive };

  void End(grpc::Status status) {
    MutexLock lock(&mu_);
    if (!end_status_) end_status_ = std::move(status);
  }

  // Under the claim. Chooses between a replay and a snapshot.
  absl::Status Begin(const v1::WatchRequest& req) {
    const bool same_store = req.store_id().empty() || req.store_id() == store_->store_id();
    if (req.after_revision() > 0 && same_store) {
      // Probe: replay when the events are retained, snapshot when trimmed.
      absl::StatusOr<std::vector<v1::KeyEvent>> probe =
          store_->EventsAfter(req.after_revision(), 0);
      if (probe.ok()) {
        phase_ = Phase::kReplay;
        sent_ = req.after_revision();
        return absl::OkStatus();
      }
      if (!absl::IsOutOfRange(probe.status())) return probe.status();
    }
    phase_ = Phase::kSnapshotProjects;
    snapshot_ = store_->Snapshot();
    sent_ = snapshot_->revision();
    return absl::OkStatus();
  }

  // Takes the claim if it is free; otherwise leaves a kick for its holder.
  void Pump() {
    {
      MutexLock lock(&mu_);
      if (claimed_ || done_) {
        kicked_ = true;
        return;
      }
      claimed_ = true;
    }
    Drive();
  }

  // Under the claim: writes the next message, finishes, or gives the claim up.
  void Drive() {
    if (phase_ != Phase::kLive && !WorkQueue::OnWorkerThread()) {
      // The snapshot or replay reads the store: not on a callback thread.
      store_work_->Post([this] { Drive(); });
      return;
    }
    for (;;) {
      std::optional<grpc::Status> finish;
      {
        MutexLock lock(&mu_);
        kicked_ = false;
        finish = end_status_;
      }
      SharedResponse next;
      if (!finish) {
        absl::StatusOr<SharedResponse> made = Next();
        if (made.ok()) {
          next = *std::move(made);
        } else {
          finish = ToGrpcStatus(made.status());
        }
      }
      enum class Act { kFinish, kWrite, kAgain, kIdle } act;
      {
        MutexLock lock(&mu_);
        if (finish) {
          done_ = true;
          act = Act::kFinish;
        } else if (next) {
          current_ = next;
          act = Act::kWrite;
        } else if (kicked_) {
          act = Act::kAgain;
        } else {
          claimed_ = false;
          act = Act::kIdle;
        }
      }
      switch (act) {
        case Act::kFinish:
          Finish(*finish);
          return;
        case Act::kWrite:
          StartWrite(next.get());  // the claim passes to OnWriteDone
          return;
        case Act::kAgain:
          continue;
        case Act::kIdle:
          return;
      }
    }
  }

  // Under the claim: the next message to send, or null when there is none yet.
  absl::StatusOr<SharedResponse> Next() {
    switch (phase_) {
      case Phase::kSnapshotProjects:
        return SnapshotProjects();
      case Phase::kSnapshotKeys:
        return SnapshotKeys();
      case Phase::kReplay:
        return Replay();
      case Phase::kLive:
        return Live();
    }
    return nullptr;
  }

  std::shared_ptr<v1::WatchResponse> NewMessage() {
    auto m = std::make_shared<v1::WatchResponse>();
    m->set_store_id(store_->store_id());
    return m;
  }

  void GoLive() {
    phase_ = Phase::kLive;
    MutexLock lock(&mu_);
    live_ = true;
  }

  absl::StatusOr<SharedResponse> SnapshotProjects() {
    auto m = NewMessage();
    v1::SnapshotChunk* chunk = m->mutable_snapshot_chunk();
    while (chunk->disabled_project_ids_size() < static_cast<int>(kSnapshotProjectsPerChunk)) {
      absl::StatusOr<Page> page =
          store_->Scan(Table::kProjects, "", cursor_, kSnapshotProjectsPerChunk, snapshot_.get());
      if (!page.ok()) return page.status();
      for (const Row& row : page->rows) {
        internal::ProjectRecord rec;
        if (!rec.ParseFromString(row.value)) return absl::DataLossError("project record");
        if (!rec.project().api_access_enabled()) chunk->add_disabled_project_ids(row.key);
      }
      if (!page->more) {
        phase_ = Phase::kSnapshotKeys;
        cursor_.clear();
        break;
      }
      cursor_ = page->rows.back().key;
    }
    return m;
  }

  absl::StatusOr<SharedResponse> SnapshotKeys() {
    auto m = NewMessage();
    absl::StatusOr<Page> page =
        store_->Scan(Table::kKeys, "", cursor_, kSnapshotKeysPerChunk, snapshot_.get());
    if (!page.ok()) return page.status();
    if (page->rows.empty()) {
      m->mutable_snapshot_end()->set_revision(snapshot_->revision());
      snapshot_.reset();
      GoLive();
      return m;
    }
    v1::SnapshotChunk* chunk = m->mutable_snapshot_chunk();
    for (const Row& row : page->rows) {
      internal::KeyRecord rec;
      if (!rec.ParseFromString(row.value)) return absl::DataLossError("key record");
      for (v1::KeyEntry& e : SidecarEntries(rec)) *chunk->add_entries() = std::move(e);
    }
    cursor_ = page->rows.back().key;
    return m;
  }

  absl::StatusOr<SharedResponse> Replay() {
    if (replay_.empty()) {
      absl::StatusOr<std::vector<v1::KeyEvent>> events = store_->EventsAfter(sent_, kReplayPage);
      if (!events.ok()) return events.status();  // trimmed meanwhile: the sidecar resumes
      if (events->empty()) {
        GoLive();
        return Live();
      }
      replay_.assign(std::make_move_iterator(events->begin()),
                     std::make_move_iterator(events->end()));
    }
    auto m = NewMessage();
    *m->mutable_event() = std::move(replay_.front());
    replay_.pop_front();
    sent_ = m->event().revision();
    return m;
  }

  absl::StatusOr<SharedResponse> Live() {
    MutexLock lock(&mu_);
    while (!queue_.empty()) {
      SharedResponse m = std::move(queue_.front());
      queue_.pop_front();
      if (m->has_progress()) return m;
      const uint64_t rev = m->event().revision();
      if (rev <= sent_) continue;  // already sent by the snapshot or replay
      if (rev != sent_ + 1) {
        return absl::InternalError(StrCat("watch gap: sent ", sent_, ", next ", rev));
      }
      sent_ = rev;
      return m;
    }
    return nullptr;
  }

  // Constant after construction.
  KeyStore* const store_;
  EventHub* const hub_;
  PropagationTracker* const propagation_;
  WorkQueue* const store_work_;
  const std::string sidecar_id_;
  const size_t queue_limit_;

  // Owned by the holder of the claim.
  Phase phase_ = Phase::kLive;
  uint64_t sent_ = 0;  // last revision sent or covered by the snapshot
  std::unique_ptr<StoreSnapshot> snapshot_;
  std::string cursor_;  // snapshot scan position
  std::deque<v1::KeyEvent> replay_;

  Mutex mu_;
  bool claimed_ ABSL_GUARDED_BY(mu_) = false;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;  // work arrived while claimed
  bool live_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;                 // Finish issued
  std::deque<SharedResponse> queue_ ABSL_GUARDED_BY(mu_);  // from the hub
  SharedResponse current_ ABSL_GUARDED_BY(mu_);            // being written
  std::optional<grpc::Status> end_status_ ABSL_GUARDED_BY(mu_);
};

std::string SidecarId(const grpc::CallbackServerContext& ctx, const v1::WatchRequest& req) {
  if (!req.sidecar_id().empty()) return req.sidecar_id();
  return ctx.peer();
}

}  // namespace

grpc::ServerWriteReactor<v1::WatchResponse>* SyncService::Watch(grpc::CallbackServerContext* ctx,
                                                                const v1::WatchRequest* req) {
  absl::StatusOr<Caller> caller = AuthenticateCall(*authority_, *ctx);
  absl::Status status = caller.status();
  if (status.ok()) status = Authorize(*caller, Permission::kSync);
  if (status.ok() && req->sidecar_id().size() > kMaxSidecarIdChars) {
    status = absl::InvalidArgumentError("sidecar_id is longer than 128 characters");
  }
  if (status.ok() && hub_->size() >= options_.max_watchers) {
    status = absl::ResourceExhaustedError("too many watch streams; retry later");
  }
  if (!status.ok()) {
    // A reactor that finishes at once, for refused calls.
    class Refused : public grpc::ServerWriteReactor<v1::WatchResponse> {
     public:
      explicit Refused(grpc::Status s) { Finish(std::move(s)); }
      void OnDone() override { delete this; }
    };
    return new Refused(ToGrpcStatus(status));
  }
  auto* stream = new WatchStream(&authority_->store(), hub_, propagation_, store_work_,
                                 SidecarId(*ctx, *req), options_.queue_limit);
  stream->Start(*req);
  return stream;
}

grpc::ServerUnaryReactor* SyncService::Acknowledge(grpc::CallbackServerContext* ctx,
                                                   const v1::AcknowledgeRequest* req,
                                                   v1::AcknowledgeResponse*) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::StatusOr<Caller> caller = AuthenticateCall(*authority_, *ctx);
  absl::Status status = caller.status();
  if (status.ok()) status = Authorize(*caller, Permission::kSync);
  if (status.ok() && req->store_id() == authority_->store().store_id()) {
    propagation_->Acknowledged(req->sidecar_id(), req->applied_revision(), absl::Now());
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* SyncService::ReportUsage(grpc::CallbackServerContext* ctx,
                                                   const v1::ReportUsageRequest* req,
                                                   v1::ReportUsageResponse*) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::StatusOr<Caller> caller = AuthenticateCall(*authority_, *ctx);
  absl::Status status = caller.status();
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  store_work_->Post([this, reactor, caller = *std::move(caller), req] {
    reactor->Finish(ToGrpcStatus(authority_->RecordUsage(caller, *req)));
  });
  return reactor;
}

}  // namespace latchkey
