#include "sidecar/sync_client.h"

#include <malloc.h>

#include "absl/time/clock.h"
#include "common/grpc_client.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace latchkey {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerHeap = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitizerHeap = true;
#else
constexpr bool kSanitizerHeap = false;
#endif
#else
constexpr bool kSanitizerHeap = false;
#endif

// glibc's malloc_trim. Not under a sanitizer, whose allocator owns the heap:
// there glibc's malloc is likely never set up before the first malloc_trim,
// which sets it up, and one ASan run crashed inside malloc_trim when a
// sidecar and an edge validator of one process took their first snapshots
// together ("receipts count an edge validator like a sidecar, ...").
void ReleaseFreedHeap() {
  if constexpr (!kSanitizerHeap) malloc_trim(0);
}

// KeySync.Sync, called through a generic stub so that its messages arrive as
// WatchMessages.
constexpr char kSyncMethod[] = "/latchkey.v1.KeySync/Sync";

}  // namespace

SyncClient::SyncClient(SyncOptions options, KeySet* keys)
    : options_(std::move(options)), keys_(keys), stub_(options_.channel) {}

SyncClient::~SyncClient() { Stop(); }

void SyncClient::Restore(const std::string& store_id, uint64_t revision, absl::Time confirmed,
                         const std::string& session) {
  MutexLock lock(&mu_);
  state_.synced = true;
  state_.restored = true;
  state_.store_id = store_id;
  state_.applied = revision;
  state_.last_confirmed = confirmed;
  known_head_ = revision;
  session_ = session;
}

std::string SyncClient::session() const {
  MutexLock lock(&mu_);
  return session_;
}

void SyncClient::Start() {
  reader_ = std::thread([this] { ReadLoop(); });
}

void SyncClient::Stop() {
  std::shared_ptr<Stream> stream;
  {
    MutexLock lock(&mu_);
    if (stopping_ && !reader_.joinable()) return;
    stopping_ = true;
    changed_.SignalAll();
    stream = stream_;
  }
  if (stream != nullptr) {
    // Goodbye before the stream ends: the authority drops this sidecar from
    // receipts at once instead of keeping it as missing. It answers the
    // closed side by ending the call, which ends the reader's loop.
    v1::SyncRequest bye;
    bye.mutable_acknowledgement()->set_leaving(true);
    stream->Send(bye);
    stream->CloseWrites();
    MutexLock lock(&mu_);
    auto ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stream_ == nullptr; };
    if (!changed_.WaitFor(&mu_, absl::Seconds(1), ended)) {
      spdlog::warn(
          "the authority did not answer this sidecar's goodbye within 1s; receipts list it as "
          "missing until the authority forgets it");
      stream_->context()->TryCancel();
    }
  }
  if (reader_.joinable()) reader_.join();
}

void SyncClient::Reconnect() {
  MutexLock lock(&mu_);
  if (stream_ != nullptr) stream_->context()->TryCancel();
}

SyncClient::State SyncClient::state() const {
  MutexLock lock(&mu_);
  return state_;
}

absl::Duration SyncClient::NextBackoff(absl::Duration previous) {
  const absl::Duration doubled = std::min(previous * 2, options_.max_backoff);
  // Full jitter over the upper half, so restarted sidecars do not reconnect
  // in lockstep.
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return std::max(options_.min_backoff, doubled * jitter(rng_));
}

void SyncClient::ReadLoop() {
  absl::Duration backoff = options_.min_backoff;
  // The last stream broke the contract: the next one starts from a snapshot
  // (a replay would rest on the state that went wrong), and its answering
  // does not reset the backoff.
  bool violated = false;
  for (;;) {
    v1::SyncRequest first;
    v1::WatchRequest& req = *first.mutable_watch();
    req.set_sidecar_id(options_.sidecar_id);
    std::shared_ptr<Stream> stream;
    building_.reset();  // before the stream's first message can look at it
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      req.set_session(session_);  // take our place in receipts back
      if (state_.synced && !violated) {
        req.set_after_revision(state_.applied);
        req.set_store_id(state_.store_id);
      }
      // Opened under mu_, so Stop() either sees stopping_ before this stream
      // exists or finds the stream to say goodbye on.
      stream = Stream::Open(
          [&](grpc::ClientContext* ctx, Stream::Reactor* r) {
            ctx->AddMetadata("authorization", "Bearer " + options_.token);
            stub_.PrepareBidiStreamingCall(ctx, kSyncMethod, grpc::StubOptions(), r);
          },
          [this](const WatchMessage& msg) { return TakeQuick(msg); });
      stream_ = stream;
      stream->Send(first);  // before anything Stop() may send
      acked_ = 0;           // a new stream: tell this authority where we are
      reader_busy_ = 0;
      answered_ = false;
      broken_ = absl::OkStatus();
    }
    // The messages the quick path passed on: snapshots, and whatever follows
    // them until this thread has caught up.
    WatchMessage msg;
    while (stream->Read(&msg)) {
      const bool kept = Receive(msg);
      MutexLock lock(&mu_);
      --reader_busy_;
      if (!kept) break;
    }
    const grpc::Status finished = stream->Finish();
    absl::Status broken;
    bool stopping;
    {
      MutexLock lock(&mu_);
      stream_ = nullptr;
      changed_.SignalAll();
      stopping = stopping_;
      broken = broken_;
      if (answered_ && !violated) backoff = options_.min_backoff;  // it answered: start over
      if (!stopping) ++state_.reconnects;
      if (!broken.ok()) ++state_.contract_violations;
      state_.backoff = backoff;
    }
    violated = !broken.ok();
    if (stopping) return;
    if (finished.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      spdlog::error(
          "the authority does not serve KeySync.Sync: it is older than this sidecar (upgrade "
          "authorities before sidecars); retrying in {}",
          absl::FormatDuration(backoff));
    } else if (broken.ok()) {
      spdlog::warn("watch stream ended ({}: {}); reconnecting in {}",
                   static_cast<int>(finished.error_code()), finished.error_message(),
                   absl::FormatDuration(backoff));
    }
    MutexLock lock(&mu_);
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    changed_.WaitFor(&mu_, backoff, stop);
    backoff = NextBackoff(backoff);
  }
}

bool SyncClient::TakeQuick(const WatchMessage& msg) {
  {
    MutexLock lock(&mu_);
    if (!broken_.ok()) return true;  // the stream is being cancelled: drop it
    const bool quick = msg.response().has_event() || msg.response().has_progress();
    if (!quick || reader_busy_ > 0 || building_ != nullptr) {
      ++reader_busy_;
      return false;
    }
  }
  Receive(msg);
  return true;  // a broken stream was cancelled; its next read ends it
}

bool SyncClient::Receive(const WatchMessage& msg) {
  {
    MutexLock lock(&mu_);
    if (!answered_) {
      answered_ = true;
      session_ = msg.response().session();
    }
  }
  absl::Status s = Handle(msg);
  if (!s.ok()) {
    spdlog::error("watch stream from authority broke the contract: {}; resyncing", s.ToString());
    MutexLock lock(&mu_);
    if (broken_.ok()) broken_ = std::move(s);
    if (stream_ != nullptr) stream_->context()->TryCancel();
    return false;
  }
  Acknowledge();
  return true;
}

absl::Status SyncClient::Handle(const WatchMessage& msg) {
  if (msg.is_snapshot_chunk()) {
    if (!building_) building_ = std::make_unique<KeySet::Builder>();
    for (size_t i = 0; i < msg.chunk_parts(); ++i) {
      if (absl::Status s = AddSnapshotChunk(msg.chunk_part(i), *building_); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  const v1::WatchResponse& response = msg.response();
  switch (response.message_case()) {
    case v1::WatchResponse::kSnapshotEnd:
      return HandleSnapshotEnd(response);
    case v1::WatchResponse::kEvent:
      return HandleEvent(response);
    case v1::WatchResponse::kProgress:
      return HandleProgress(response);
    case v1::WatchResponse::kSnapshotChunk:  // never: a chunk is read as its parts
    case v1::WatchResponse::MESSAGE_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("empty watch message");
}

absl::Status SyncClient::HandleSnapshotEnd(const v1::WatchResponse& msg) {
  const uint64_t revision = msg.snapshot_end().revision();
  {
    MutexLock lock(&mu_);
    if (state_.synced && msg.store_id() == state_.store_id && revision < state_.applied) {
      return absl::FailedPreconditionError(
          StrCat("snapshot at revision ", revision, " is behind applied ", state_.applied));
    }
  }
  if (!building_) building_ = std::make_unique<KeySet::Builder>();  // a snapshot of nothing
  const size_t keys = building_->size();
  // The state changes in the instant the keys do: health and metrics never
  // see the new keys served with the old revision, or the reverse.
  keys_->Replace(*building_, [&](absl::FunctionRef<void()> swap) {
    MutexLock lock(&mu_);
    swap();
    state_.store_id = msg.store_id();
    state_.synced = true;
    state_.applied = revision;
    known_head_ = std::max(known_head_, revision);
    ++state_.snapshots;
    state_.last_confirmed = absl::Now();
  });
  building_.reset();
  // The snapshot's messages and entries were freed; give their pages back
  // rather than keep a million keys' worth of transient heap resident.
  ReleaseFreedHeap();
  spdlog::info("loaded snapshot of {} keys at revision {} of store {}", keys, revision,
               msg.store_id());
  MarkApplied(revision, true);
  return absl::OkStatus();
}

absl::Status SyncClient::HandleEvent(const v1::WatchResponse& msg) {
  const uint64_t revision = msg.event().revision();
  {
    MutexLock lock(&mu_);
    if (building_) return absl::FailedPreconditionError("event inside a snapshot");
    if (!state_.synced) return absl::FailedPreconditionError("event before any snapshot");
    if (msg.store_id() != state_.store_id) {
      return absl::FailedPreconditionError("event from another store id without a snapshot");
    }
    if (revision != state_.applied + 1) {
      return absl::FailedPreconditionError(
          StrCat("expected revision ", state_.applied + 1, ", got ", revision));
    }
  }
  if (absl::Status s = keys_->Apply(msg.event()); !s.ok()) return s;
  {
    MutexLock lock(&mu_);
    state_.applied = revision;
    ++state_.events;
    if (revision >= known_head_) state_.last_confirmed = absl::Now();
  }
  MarkApplied(revision, false);
  return absl::OkStatus();
}

absl::Status SyncClient::HandleProgress(const v1::WatchResponse& msg) {
  const uint64_t head = msg.progress().head_revision();
  MutexLock lock(&mu_);
  if (!state_.synced || building_) return absl::OkStatus();
  if (msg.store_id() != state_.store_id) {
    return absl::FailedPreconditionError("progress from another store id");
  }
  if (head < state_.applied) {
    return absl::FailedPreconditionError(
        StrCat("authority head ", head, " is behind applied revision ", state_.applied,
               " of the same store: refusing to go backwards (restored from a backup?)"));
  }
  known_head_ = std::max(known_head_, head);
  if (state_.applied >= head) state_.last_confirmed = absl::Now();
  return absl::OkStatus();
}

void SyncClient::MarkApplied(uint64_t revision, bool snapshot) {
  if (options_.on_applied) options_.on_applied(revision, snapshot);
}

void SyncClient::Acknowledge() {
  v1::SyncRequest ack;
  std::shared_ptr<Stream> stream;
  {
    MutexLock lock(&mu_);
    if (stream_ == nullptr || !state_.synced || state_.applied == acked_) return;
    stream = stream_;
    acked_ = state_.applied;
    ack.mutable_acknowledgement()->set_applied_revision(state_.applied);
    ack.mutable_acknowledgement()->set_store_id(state_.store_id);
  }
  // Never blocks: while an earlier acknowledgement is being written this one
  // waits behind it, replacing any older one still waiting.
  stream->Send(ack);
}

}  // namespace latchkey
