// Group commit (internal/etcd_store_impl.h): Append only checks and queues;
// Sync sends everything queued as one etcd transaction (or waits for the one
// in flight), so a replica's concurrent mutations share a round trip.
#include <algorithm>

#include "absl/strings/numbers.h"
#include "authority/store/etcd/internal/etcd_store_impl.h"
#include "common/key_format.h"
#include "common/strings.h"

namespace latchkey {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::RequestOp;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;

// The row still holds what was read: its value, or (read as absent) nothing.
void RequireRead(TxnRequest& txn, const std::string& row, const Precondition& read) {
  if (!read.value) return RequireAbsent(txn, row);
  RequireValue(txn, row, *read.value);
}

}  // namespace

uint64_t EtcdStore::next_revision() const {
  MutexLock lock(&batch_mu_);
  return NextRevision();
}

// A build reads the copy: let it catch up with what this replica knows was
// committed (a lost batch taught it a newer head), or the build is refused
// again. Bounded: a stale build is only wasted, never wrong.
void EtcdStore::AwaitKnownRevisions() const {
  if (InsideCommitListener()) return;  // the publisher is this very thread
  if (head_revision() >= known_committed_.load(std::memory_order_acquire)) return;
  MutexLock lock(&mu_);
  WaitPublished(known_committed_.load(std::memory_order_acquire), kCatchUpWait);
}

uint64_t EtcdStore::NextRevision() const {
  return (pending_ > 0 ? last_appended_ : std::max(last_committed_, known_committed_.load())) + 1;
}

absl::StatusOr<uint64_t> EtcdStore::Append(Mutation m) {
  MutexLock lock(&batch_mu_);
  const uint64_t revision = NextRevision();
  if (m.revision != 0 && m.revision != revision) {
    conflicts_.fetch_add(1, std::memory_order_relaxed);
    return absl::AbortedError(
        StrCat("revision ", m.revision, " was taken by another commit; the next is ", revision));
  }
  // A revision a lost batch held is not handed out again until that
  // batch's appender has heard so (Sync): the answer is per Append.
  if (!failed_.empty() && failed_.rbegin()->first >= revision) {
    return absl::AbortedError("a batch of this replica was refused; build again");
  }
  Pending p;
  p.revision = revision;
  for (Precondition& read : m.reads) {
    // A row a pending batch writes is checked here, against the batch;
    // others (rows committed but not yet in the copy too) by etcd, when
    // the batch commits.
    auto it = overlay_.find(layout_.Row(read.table, read.key));
    if (it == overlay_.end() || it->second.second <= last_committed_) {
      p.reads.push_back(std::move(read));
    } else if (it->second.first != read.value) {
      conflicts_.fetch_add(1, std::memory_order_relaxed);
      return absl::AbortedError("a row this change read was changed by another commit");
    }
  }
  for (const Write& w : m.writes) overlay_[layout_.Row(w.table, w.key)] = {w.value, revision};
  m.event.set_revision(revision);
  m.audit.set_revision(revision);
  *p.log.mutable_event() = std::move(m.event);
  *p.log.mutable_audit() = std::move(m.audit);
  p.writes = std::move(m.writes);
  queued_.push_back(std::move(p));
  last_appended_ = revision;
  ++pending_;
  return revision;
}

absl::Status EtcdStore::Sync(uint64_t revision) {
  if (InsideCommitListener()) return SyncInsideCommitListener();
  absl::Status outcome = absl::OkStatus();
  {
    MutexLock lock(&batch_mu_);
    for (;;) {
      if (auto it = failed_.find(revision); it != failed_.end()) {
        outcome = it->second;
        failed_.erase(it);
        break;
      }
      const bool pending = pending_ > 0 && revision > last_committed_ && revision <= last_appended_;
      if (!pending) break;
      if (!flushing_ && !queued_.empty() && queued_.front().revision <= revision) {
        Flush();
        continue;
      }
      batch_done_.Wait(&batch_mu_);
    }
  }
  if (!outcome.ok()) return outcome;
  // Durable already (etcd acknowledged it); published once the watch of the
  // log brings it here, in order with every other replica's revisions.
  MutexLock lock(&mu_);
  if (WaitPublished(revision, absl::Seconds(10))) return absl::OkStatus();
  return absl::UnavailableError(StrCat("revision ", revision,
                                       " is committed in etcd but its watch did not bring it "
                                       "back within 10 s (",
                                       watch_error_.ToString(), ")"));
}

void EtcdStore::Flush() {
  flushing_ = true;
  std::vector<Pending> batch;
  size_t ops = 1, compares = 1;  // the head
  while (!queued_.empty()) {
    // + log, audit by project and by revision, trimmed log
    const size_t more = queued_.front().writes.size() + 4;
    const size_t more_compares = queued_.front().reads.size();
    if (!batch.empty() && (ops + more > kMaxTxnOps || compares + more_compares > kMaxTxnOps ||
                           batch.size() >= kMaxBatch)) {
      break;
    }
    ops += more;
    compares += more_compares;
    batch.push_back(std::move(queued_.front()));
    queued_.pop_front();
  }
  batch_mu_.Unlock();
  absl::StatusOr<bool> committed = SendBatch(batch);
  batch_mu_.Lock();
  flushing_ = false;
  if (committed.ok() && *committed) {
    // Its rows stay in the overlay until the watch brings them into the
    // copy (Apply).
    last_committed_ = batch.back().revision;
    pending_ -= batch.size();
  } else {
    // Everything queued was built on this batch: all of it is lost.
    const absl::Status lost =
        committed.ok() ? absl::AbortedError(
                             "another commit took this revision, or changed a row this change "
                             "read; build again")
                       : committed.status();
    for (const Pending& p : batch) failed_[p.revision] = lost;
    for (const Pending& p : queued_) failed_[p.revision] = lost;
    queued_.clear();
    // What the lost mutations wrote; committed rows stay until copied.
    for (auto it = overlay_.begin(); it != overlay_.end();) {
      it = it->second.second > last_committed_ ? overlay_.erase(it) : std::next(it);
    }
    pending_ = 0;
  }
  batch_done_.SignalAll();
}

absl::StatusOr<bool> EtcdStore::SendBatch(std::vector<Pending>& batch) {
  const std::string nonce = RandomBase62(22);
  const uint64_t first = batch.front().revision, last = batch.back().revision;
  TxnRequest txn;
  RequireValue(txn, layout_.Head(), HeadValue(first - 1));
  // etcd refuses a transaction that writes one key twice: the last write
  // of each key wins, as it would one after another.
  std::map<std::string, std::optional<std::string>> puts;
  for (Pending& p : batch) {
    for (const Precondition& read : p.reads) {
      RequireRead(txn, layout_.Row(read.table, read.key), read);
    }
    for (Write& w : p.writes) puts[layout_.Row(w.table, w.key)] = std::move(w.value);
    p.log.set_nonce(nonce);
    const uint64_t r = p.revision;
    std::string audit = p.log.audit().SerializeAsString();
    puts[layout_.Audit(p.log.audit().project_id(), r)] = audit;
    puts[layout_.AuditLog(r)] = std::move(audit);
    puts[layout_.Log(r)] = p.log.SerializeAsString();
    if (const uint64_t leaving = EventLeavingAt(r, retention_); leaving > 0) {
      puts[layout_.Log(leaving)] = std::nullopt;
    }
  }
  puts[layout_.Head()] = HeadValue(last);
  for (auto& [key, value] : puts) {
    RequestOp* op = txn.add_success();
    if (value) {
      op->mutable_request_put()->set_key(key);
      op->mutable_request_put()->set_value(std::move(*value));
    } else {
      op->mutable_request_delete_range()->set_key(key);
    }
  }
  txn.add_failure()->mutable_request_range()->set_key(layout_.Head());

  // Once an attempt may have reached etcd without an answer (its member
  // died, lost its leader or went silent), only the log can tell whether
  // this very batch (its nonce) took its first revision: a later copy that
  // fails its comparison may have failed on the first copy's own head.
  // Resolving gets one call's time; then the appenders are told
  // UNAVAILABLE (their mutations may or may not have committed).
  const absl::Time deadline = client_->CallDeadline();
  bool uncertain = false;
  grpc::Status last_error;
  for (;;) {
    if (uncertain) {
      absl::StatusOr<std::optional<std::string>> there = GetAt(layout_.Log(first), 0, deadline);
      if (there.ok() && there->has_value()) {
        internal::LogRecord found;
        if (!found.ParseFromString(**there)) return absl::DataLossError("log record");
        if (found.nonce() == nonce) {
          commits_.fetch_add(batch.size(), std::memory_order_relaxed);
          NoteCommitted(last);
          return true;
        }
        NoteCommitted(first);
        return false;
      }
      if (absl::Now() >= deadline) {
        return absl::UnavailableError(StrCat("etcd did not answer: ", last_error.error_message()));
      }
      // Not readable yet (an election): ask again. Not there: safe to send
      // again, the head comparison lets one copy in.
      if (!there.ok()) {
        absl::SleepFor(kRoundPause);
        continue;
      }
    }
    TxnResponse resp;
    const grpc::Status s = client_->Txn(txn, &resp, deadline);
    txns_.fetch_add(1, std::memory_order_relaxed);
    if (s.ok() && resp.succeeded()) {
      commits_.fetch_add(batch.size(), std::memory_order_relaxed);
      NoteCommitted(last);
      return true;
    }
    if (s.ok() && !uncertain) {
      conflicts_.fetch_add(1, std::memory_order_relaxed);
      // The head as etcd has it, so the next attempt starts from it.
      if (resp.responses_size() > 0 && resp.responses(0).response_range().kvs_size() > 0) {
        if (std::optional<uint64_t> now =
                ParseHead(resp.responses(0).response_range().kvs(0).value())) {
          NoteCommitted(*now);
        }
      }
      return false;
    }
    if (!s.ok() && !MemberGone(s) && !uncertain) return FromGrpc(s, "txn");
    if (!s.ok()) last_error = s;
    uncertain = true;
  }
}

void EtcdStore::NoteCommitted(uint64_t revision) {
  uint64_t known = known_committed_.load(std::memory_order_relaxed);
  while (known < revision &&
         !known_committed_.compare_exchange_weak(known, revision, std::memory_order_acq_rel)) {
  }
}

}  // namespace latchkey
