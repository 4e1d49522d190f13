// A sidecar's Sync stream kept lean: the applied revision and nothing else,
// acknowledged as a sidecar acknowledges it. The fleet bench runs thousands of
// them in one process; `lean-sidecar` runs one as a process of its own, the
// floor a real sidecar's CPU per applied revision is measured against (the
// same stream through gRPC's callback API, with no key set behind it).
#ifndef LATCHKEY_BENCH_LEAN_STREAM_H_
#define LATCHKEY_BENCH_LEAN_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bench/support.h"
#include "latchkey/v1/key_sync.grpc.pb.h"

namespace latchkey::bench {

// How many streams applied each revision, and when the last of them did.
class Arrivals {
 public:
  Arrivals(int streams, uint64_t max_revision)
      : streams_(streams), counts_(static_cast<size_t>(max_revision) + 1) {}

  void Applied(uint64_t revision) {
    if (revision >= counts_.size()) return;
    if (counts_[revision].fetch_add(1) + 1 == streams_) {
      std::lock_guard<std::mutex> lock(mu_);
      all_at_[revision] = Clock::now();
      all_.notify_all();
    }
  }

  // When the last stream applied `revision`; nullopt if they had not all
  // within `timeout`.
  std::optional<Clock::time_point> WaitAll(uint64_t revision, Clock::duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!all_.wait_for(lock, timeout, [&] { return all_at_.count(revision) > 0; })) {
      return std::nullopt;
    }
    return all_at_[revision];
  }

 private:
  const int streams_;
  std::vector<std::atomic<int>> counts_;  // by revision
  std::mutex mu_;
  std::condition_variable all_;
  std::map<uint64_t, Clock::time_point> all_at_;
};

// What the streams tell the run.
struct Tally {
  std::atomic<int> synced{0};  // snapshots applied
  std::atomic<int> broken{0};  // a gap in revisions, or a stream ended
};

// One sidecar's Sync stream, kept lean: its applied revision and nothing
// else. It acknowledges each new revision as the sidecar does (the newest
// only: one written at a time, a newer one waiting behind it). Every
// operation starts from a reaction or the constructor, so no hold is needed.
class LeanStream final : public grpc::ClientBidiReactor<v1::SyncRequest, v1::WatchResponse> {
 public:
  // `arrivals` may be null.
  LeanStream(v1::KeySync::Stub& stub, const std::string& token, const std::string& sidecar_id,
             Arrivals* arrivals, Tally* tally)
      : arrivals_(arrivals), tally_(tally) {
    ctx_.AddMetadata("authorization", "Bearer " + token);
    out_.mutable_watch()->set_sidecar_id(sidecar_id);
    writing_ = true;
    stub.async()->Sync(&ctx_, this);
    StartWrite(&out_);
    StartRead(&in_);
    StartCall();
  }

  void Cancel() { ctx_.TryCancel(); }
  void WaitDone() {
    std::unique_lock<std::mutex> lock(mu_);
    ended_.wait(lock, [&] { return done_; });
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    uint64_t applied = 0;
    if (in_.has_snapshot_end()) {
      applied = in_.snapshot_end().revision();
      tally_->synced.fetch_add(1);
    } else if (in_.has_event()) {
      applied = in_.event().revision();
      if (arrivals_ != nullptr) arrivals_->Applied(applied);
    }
    if (applied != 0) Acknowledge(applied, in_.store_id());
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (ok && ack_due_) {
      ack_due_ = false;
      Fill();
      lock.unlock();
      StartWrite(&out_);
      return;
    }
    writing_ = false;
  }

  void OnDone(const grpc::Status& status) override {
    if (status.error_code() != grpc::StatusCode::CANCELLED) tally_->broken.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    ended_.notify_all();
  }

 private:
  void Acknowledge(uint64_t revision, const std::string& store_id) {
    std::unique_lock<std::mutex> lock(mu_);
    if (applied_ != 0 && store_id == store_id_ && revision != applied_ + 1) {
      tally_->broken.fetch_add(1);
    }
    applied_ = revision;
    store_id_ = store_id;
    if (writing_) {
      ack_due_ = true;
      return;
    }
    writing_ = true;
    Fill();
    lock.unlock();
    StartWrite(&out_);
  }

  // Under mu_.
  void Fill() {
    out_.Clear();
    out_.mutable_acknowledgement()->set_applied_revision(applied_);
    out_.mutable_acknowledgement()->set_store_id(store_id_);
  }

  Arrivals* const arrivals_;
  Tally* const tally_;
  grpc::ClientContext ctx_;
  v1::WatchResponse in_;  // gRPC's between StartRead and OnReadDone
  std::mutex mu_;
  std::condition_variable ended_;
  v1::SyncRequest out_;  // gRPC's while writing_
  bool writing_ = false;
  bool ack_due_ = false;  // applied_ moved on while a write was in flight
  uint64_t applied_ = 0;
  std::string store_id_;
  bool done_ = false;
};

// One LeanStream to `authority` in this process, until SIGTERM or SIGINT.
int LeanSidecar(const std::string& authority, const std::string& token_file,
                const std::string& sidecar_id);

}  // namespace latchkey::bench

#endif  // LATCHKEY_BENCH_LEAN_STREAM_H_
