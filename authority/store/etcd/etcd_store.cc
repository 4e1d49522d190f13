// The etcd KeyStore (docs/design.md, "The etcd store").
//
// Keys under the prefix P:
//   P meta/id                   the store id
//   P meta/head                 the last committed revision, in decimal
//   P t/<table>/<row key>       rows
//   P log/<revision>            internal.LogRecord: event, audit record, nonce
//   P audit/<project>/<revision> the audit record, by project
//   P auditlog/<revision>       the audit record, by revision (KeyStore::AuditLog)
//   P advisory/progress/<key>   a progress row (KeyStore::PutProgress)
//   P duties/<duty>             the replica id doing a duty (KeyStore::Lead), leased
//   P replicas/<replica id>     internal.SharedReceipts of a live replica, leased
//   P usage-writers/<n>         the replica id holding usage writer n, leased
// Revisions are 20-digit decimals, so etcd's byte order is revision order.
//
// Consecutive mutations of one replica (revisions R..S) are one etcd
// transaction (group commit): if P meta/head still holds R - 1 and every row
// read still holds what was read, write S to P meta/head, the rows, and each
// revision's log and audit records. etcd acknowledges a transaction once a
// quorum has it on disk, so Sync's answer is durable. Publication follows
// etcd's own watch of P log/ through P t/: every replica hears every
// revision, its own and the others', in order, with the rows it wrote, and
// moves its head (and the etcd revision its plain reads use) only then. The
// same watch keeps a copy of the rows in memory, which transactions read
// (see "Builds read a local copy" in docs/design.md).
#include "authority/store/etcd/etcd_store.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "authority/internal/records.pb.h"
#include "common/key_format.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/strings.h"
#include "common/tls.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace latchkey {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::RequestOp;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;

const char* TableName(Table t) {
  switch (t) {
    case Table::kProjects:
      return "projects";
    case Table::kKeys:
      return "keys";
    case Table::kProjectKeys:
      return "project_keys";
    case Table::kDigests:
      return "digests";
    case Table::kPrincipals:
      return "principals";
    case Table::kGuards:
      return "guards";
    case Table::kLeaks:
      return "leaks";
    case Table::kWebhooks:
      return "webhooks";
    case Table::kRoleBindings:
      return "role_bindings";
  }
  return "unknown";
}

std::string Decimal(uint64_t r) {
  std::string s = std::to_string(r);
  return std::string(20 - std::min<size_t>(20, s.size()), '0') + s;
}

// The first key after every key that starts with `prefix` (etcd's range_end).
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    unsigned char last = static_cast<unsigned char>(prefix.back());
    if (last < 0xff) {
      prefix.back() = static_cast<char>(last + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

// The keys of the layout above, under `prefix`; the store and the import
// both write them.
std::string RowKeyIn(std::string_view prefix, Table table, std::string_view key) {
  return StrCat(prefix, "t/", TableName(table), "/", key);
}
// Usage rows sit beside the tables, under P t/ (so the watch keeps them in
// the copy): `row_key` as UsageRowKey makes it.
std::string UsageKeyIn(std::string_view prefix, std::string_view row_key) {
  return StrCat(prefix, "t/usage/", row_key);
}
std::string LogKeyIn(std::string_view prefix, uint64_t revision) {
  return StrCat(prefix, "log/", Decimal(revision));
}
std::string AuditKeyIn(std::string_view prefix, std::string_view project, uint64_t revision) {
  return StrCat(prefix, "audit/", project, "/", Decimal(revision));
}
std::string AuditLogKeyIn(std::string_view prefix, uint64_t revision) {
  return StrCat(prefix, "auditlog/", Decimal(revision));
}
std::string ProgressKeyIn(std::string_view prefix, std::string_view key) {
  return StrCat(prefix, "advisory/progress/", key);
}
std::string HeadKeyIn(std::string_view prefix) { return StrCat(prefix, "meta/head"); }
std::string IdKeyIn(std::string_view prefix) { return StrCat(prefix, "meta/id"); }

absl::Status FromGrpc(const grpc::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string message = StrCat("etcd ", what, ": ", s.error_message());
  switch (s.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED:
      return absl::UnavailableError(message);
    case grpc::StatusCode::OUT_OF_RANGE:  // a compacted revision
      return absl::OutOfRangeError(message);
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return absl::ResourceExhaustedError(message);
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

// A failure after which another member may answer: the member is down,
// silent past the attempt's deadline, or without a leader ("etcdserver: no
// leader", "leader changed" and "request timed out" are all UNAVAILABLE).
bool MemberGone(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// How long to wait between two rounds over every member (an election).
constexpr absl::Duration kRoundPause = absl::Milliseconds(50);

// One channel per member; calls go to the current one and move on to the
// next when it is gone. gRPC's own load balancing would spread reads but not
// tell us which member a failed transaction reached, so the choice is ours.
// One try on one member gets at most `attempt_timeout`, so a member that
// died, lost its leader or stopped answering costs about that much; a whole
// call (rounds over every member) gets at most `call_timeout`.
class EtcdClient {
 public:
  EtcdClient(std::vector<std::string> endpoints,
             const std::shared_ptr<grpc::ChannelCredentials>& credentials,
             absl::Duration call_timeout, absl::Duration attempt_timeout)
      : endpoints_(std::move(endpoints)),
        call_timeout_(call_timeout),
        attempt_timeout_(attempt_timeout) {
    for (const std::string& e : endpoints_) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
      // A connection attempt to a member that accepts but never answers
      // (stopped) gives up after an attempt, not gRPC's default 20 s.
      args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
                  static_cast<int>(absl::ToInt64Milliseconds(attempt_timeout)));
      // Keep-alive pings find a silent member under a long call (the watch)
      // even when nothing waits on it. etcd refuses pings more often than
      // every 5 s by default (--grpc-keepalive-min-time), so every 10 s;
      // attempts and the watch's own check (EtcdStore::WaitPublished) notice
      // a silent member within about a second.
      args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
      args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                  static_cast<int>(absl::ToInt64Milliseconds(attempt_timeout)));
      auto channel = grpc::CreateCustomChannel(e, credentials, args);
      kv_.push_back(etcdserverpb::KV::NewStub(channel));
      lease_.push_back(etcdserverpb::Lease::NewStub(channel));
      watch_.push_back(etcdserverpb::Watch::NewStub(channel));
    }
  }

  size_t size() const { return endpoints_.size(); }
  size_t current() const { return current_.load(std::memory_order_relaxed); }
  const std::string& endpoint(size_t i) const { return endpoints_[i]; }
  etcdserverpb::Watch::Stub& watch(size_t i) { return *watch_[i]; }

  // Moves on from member `from` (if no other call has already).
  void MoveOn(size_t from) {
    size_t expected = from;
    current_.compare_exchange_strong(expected, (from + 1) % size());
  }

  // When a call starting now must have its answer.
  absl::Time CallDeadline() const { return absl::Now() + call_timeout_; }

  // One attempt, ending by `deadline` at the latest.
  void Prepare(grpc::ClientContext& ctx, absl::Time deadline) const {
    ctx.set_deadline(absl::ToChronoTime(std::min(absl::Now() + attempt_timeout_, deadline)));
    // A member cut off from the quorum refuses rather than answering stale.
    ctx.AddMetadata("hasleader", "true");
  }

  uint64_t calls() const { return calls_.load(std::memory_order_relaxed); }
  double call_seconds() const { return call_micros_.load(std::memory_order_relaxed) / 1e6; }

  // Reads are idempotent: tried on every member in turn.
  absl::Status Range(const RangeRequest& req, RangeResponse* resp,
                     absl::Time deadline = absl::InfiniteFuture()) {
    return OnAnyMember(
        "range", [&](size_t i, grpc::ClientContext& ctx) { return kv_[i]->Range(&ctx, req, resp); },
        deadline);
  }

  // An idempotent call, `call(member, ctx)`, tried on every member in turn,
  // round after round (a new leader is being elected) until one answers or
  // the call's time (or `deadline`, if sooner) runs out.
  template <typename Call>
  absl::Status OnAnyMember(std::string_view what, const Call& call,
                           absl::Time deadline = absl::InfiniteFuture()) {
    deadline = std::min(deadline, CallDeadline());
    grpc::Status last;
    for (;;) {
      for (size_t tries = 0; tries < size(); ++tries) {
        const size_t i = current();
        grpc::ClientContext ctx;
        Prepare(ctx, deadline);
        const absl::Time start = absl::Now();
        last = call(i, ctx);
        Count(start);
        if (!MemberGone(last)) return FromGrpc(last, what);
        MoveOn(i);
        if (absl::Now() >= deadline) return FromGrpc(last, what);
      }
      absl::SleepFor(std::min(kRoundPause, deadline - absl::Now()));
    }
  }

  // A new lease of `ttl`: its id.
  absl::StatusOr<int64_t> Grant(absl::Duration ttl) {
    etcdserverpb::LeaseGrantRequest req;
    req.set_ttl(absl::ToInt64Seconds(ttl));
    etcdserverpb::LeaseGrantResponse resp;
    absl::Status s = OnAnyMember("lease grant", [&](size_t i, grpc::ClientContext& ctx) {
      return lease_[i]->LeaseGrant(&ctx, req, &resp);
    });
    if (!s.ok()) return s;
    if (!resp.error().empty())
      return absl::InternalError(StrCat("etcd lease grant: ", resp.error()));
    return resp.id();
  }

  // Renews `lease`; NOT_FOUND when it has already expired.
  absl::Status KeepAlive(int64_t lease) {
    etcdserverpb::LeaseKeepAliveResponse resp;
    absl::Status s = OnAnyMember("lease keepalive", [&](size_t i, grpc::ClientContext& ctx) {
      // Renewal is a stream in etcd's API; one request and its answer.
      auto stream = lease_[i]->LeaseKeepAlive(&ctx);
      etcdserverpb::LeaseKeepAliveRequest req;
      req.set_id(lease);
      if (stream->Write(req)) stream->Read(&resp);
      stream->WritesDone();
      return stream->Finish();
    });
    if (!s.ok()) return s;
    if (resp.ttl() <= 0) return absl::NotFoundError("etcd lease expired");
    return absl::OkStatus();
  }

  // Ends `lease` now, deleting the keys bound to it.
  absl::Status Revoke(int64_t lease) {
    etcdserverpb::LeaseRevokeRequest req;
    req.set_id(lease);
    etcdserverpb::LeaseRevokeResponse resp;
    return OnAnyMember("lease revoke", [&](size_t i, grpc::ClientContext& ctx) {
      return lease_[i]->LeaseRevoke(&ctx, req, &resp);
    });
  }

  // One attempt on the current member, ending by `deadline` at the latest;
  // the caller resolves an unknown outcome.
  grpc::Status Txn(const TxnRequest& req, TxnResponse* resp, absl::Time deadline) {
    const size_t i = current();
    grpc::ClientContext ctx;
    Prepare(ctx, deadline);
    const absl::Time start = absl::Now();
    grpc::Status s = kv_[i]->Txn(&ctx, req, resp);
    Count(start);
    if (MemberGone(s)) MoveOn(i);
    return s;
  }

  // Writes with no precondition are idempotent too.
  absl::Status BlindTxn(const TxnRequest& req, TxnResponse* resp) {
    return OnAnyMember(
        "txn", [&](size_t i, grpc::ClientContext& ctx) { return kv_[i]->Txn(&ctx, req, resp); });
  }

 private:
  void Count(absl::Time start) {
    calls_.fetch_add(1, std::memory_order_relaxed);
    call_micros_.fetch_add(absl::ToInt64Microseconds(absl::Now() - start),
                           std::memory_order_relaxed);
  }

  const std::vector<std::string> endpoints_;
  const absl::Duration call_timeout_;
  const absl::Duration attempt_timeout_;
  std::atomic<uint64_t> calls_{0};
  std::atomic<int64_t> call_micros_{0};
  std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> kv_;
  std::vector<std::unique_ptr<etcdserverpb::Watch::Stub>> watch_;
  std::vector<std::unique_ptr<etcdserverpb::Lease::Stub>> lease_;
  std::atomic<size_t> current_{0};
};

// Every key under `prefix` and its value at `etcd_revision`, read in pages.
absl::StatusOr<std::map<std::string, std::string>> ReadAll(EtcdClient& client,
                                                           const std::string& prefix,
                                                           int64_t etcd_revision) {
  std::map<std::string, std::string> all;
  RangeRequest req;
  req.set_key(prefix);
  req.set_range_end(PrefixEnd(prefix));
  req.set_revision(etcd_revision);
  req.set_limit(5000);
  for (;;) {
    RangeResponse resp;
    if (absl::Status s = client.Range(req, &resp); !s.ok()) return s;
    for (const auto& kv : resp.kvs()) all.emplace_hint(all.end(), kv.key(), kv.value());
    if (!resp.more() || resp.kvs_size() == 0) return all;
    req.set_key(StrCat(resp.kvs(resp.kvs_size() - 1).key(), std::string(1, '\0')));
  }
}

class EtcdSnapshot : public StoreSnapshot {
 public:
  EtcdSnapshot(uint64_t revision, int64_t etcd_revision)
      : revision_(revision), etcd_revision_(etcd_revision) {}
  uint64_t revision() const override { return revision_; }
  int64_t etcd_revision() const { return etcd_revision_; }

 private:
  const uint64_t revision_;
  const int64_t etcd_revision_;
};

class EtcdStore : public KeyStore {
 public:
  EtcdStore(std::unique_ptr<EtcdClient> client, const EtcdStoreOptions& options,
            std::string store_id, uint64_t head, int64_t head_etcd_revision,
            std::map<std::string, std::string> rows)
      : client_(std::move(client)),
        prefix_(options.prefix),
        retention_(options.event_retention),
        call_timeout_(options.call_timeout),
        store_id_(std::move(store_id)),
        head_(head),
        head_etcd_(head_etcd_revision),
        known_head_(head),
        copy_(std::move(rows)),
        share_key_(StrCat(prefix_, "replicas/", GenerateId("rep_", 16))) {
    watcher_ = std::thread([this] { WatchLog(); });
  }

  ~EtcdStore() override {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
      if (watch_ctx_ != nullptr) watch_ctx_->TryCancel();
    }
    watcher_.join();
    // What this replica shared leaves with it (a killed one's, when its
    // lease runs out).
    {
      MutexLock lock(&share_mu_);
      if (lease_ != 0) client_->Revoke(lease_).IgnoreError();
    }
    // Its duties and usage writer are free for the next replica at once.
    {
      MutexLock lock(&duty_mu_);
      if (duty_lease_ != 0) client_->Revoke(duty_lease_).IgnoreError();
    }
    MutexLock lock(&usage_mu_);
    if (usage_lease_ != 0) client_->Revoke(usage_lease_).IgnoreError();
  }

  const std::string& store_id() const override { return store_id_; }

  uint64_t head_revision() const override { return head_.load(std::memory_order_acquire); }

  uint64_t next_revision() const override {
    // A build reads the copy: let it catch up with what this replica knows
    // was committed (a lost batch taught it a newer head), or the build is
    // refused again. Bounded: a stale build is only wasted, never wrong.
    {
      MutexLock lock(&mu_);
      WaitPublished(known_head_.load(std::memory_order_acquire), kCatchUpWait);
    }
    MutexLock lock(&batch_mu_);
    return NextRevision();
  }

  // Group commit (docs/design.md, "The etcd store"): Append only checks and
  // queues; Sync sends everything queued as one etcd transaction (or waits
  // for the one in flight), so a replica's concurrent mutations share a round
  // trip.
  absl::StatusOr<uint64_t> Append(Mutation m) override {
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
      auto it = overlay_.find(RowKey(read.table, read.key));
      if (it == overlay_.end() || it->second.second <= committed_) {
        p.reads.push_back(std::move(read));
      } else if (it->second.first != read.value) {
        conflicts_.fetch_add(1, std::memory_order_relaxed);
        return absl::AbortedError("a row this change read was changed by another commit");
      }
    }
    for (const Write& w : m.writes) overlay_[RowKey(w.table, w.key)] = {w.value, revision};
    m.event.set_revision(revision);
    m.audit.set_revision(revision);
    *p.log.mutable_event() = std::move(m.event);
    *p.log.mutable_audit() = std::move(m.audit);
    p.writes = std::move(m.writes);
    queued_.push_back(std::move(p));
    appended_ = revision;
    ++pending_;
    return revision;
  }

  absl::Status Sync(uint64_t revision) override {
    batch_mu_.Lock();
    absl::Status outcome = absl::OkStatus();
    for (;;) {
      if (auto it = failed_.find(revision); it != failed_.end()) {
        outcome = it->second;
        failed_.erase(it);
        break;
      }
      const bool pending = pending_ > 0 && revision > committed_ && revision <= appended_;
      if (!pending) break;
      if (!flushing_ && !queued_.empty() && queued_.front().revision <= revision) {
        Flush();
        continue;
      }
      batch_done_.Wait(&batch_mu_);
    }
    batch_mu_.Unlock();
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

  // Usage writers are numbered from 0, each held by one live replica through
  // a key bound to its lease (P usage-writers/<n>). A replica takes the
  // lowest number nobody holds: a writer whose replica died is free once that
  // replica's lease runs out, and its rows become the next holder's own.
  absl::StatusOr<std::string> UsageWriter() override {
    MutexLock lock(&usage_mu_);
    const absl::Time now = absl::Now();
    if (usage_lease_ != 0 && now - usage_renewed_ >= kUsageLease / 3) {
      absl::Status renewed = client_->KeepAlive(usage_lease_);
      if (absl::IsNotFound(renewed)) {
        // Lapsed while etcd was out of reach: the writer may be another's
        // now, and what the caller knows of its rows is stale.
        const std::string lapsed = std::move(usage_writer_);
        usage_lease_ = 0;
        usage_writer_.clear();
        return absl::AbortedError(StrCat("usage writer ", lapsed, " lapsed; ask again"));
      } else if (!renewed.ok()) {
        return renewed;
      } else {
        usage_renewed_ = now;
      }
    }
    if (usage_lease_ != 0) return usage_writer_;
    absl::StatusOr<int64_t> lease = client_->Grant(kUsageLease);
    if (!lease.ok()) return lease.status();
    for (int n = 0; n < kMaxUsageWriters; ++n) {
      const std::string key = UsageWriterKey(std::to_string(n));
      // Free (never held, or its holder's lease ended): take it. Held by
      // this lease already (an earlier try whose answer was lost): keep it.
      TxnRequest txn;
      Compare* free = txn.add_compare();
      free->set_key(key);
      free->set_target(Compare::VERSION);
      free->set_result(Compare::EQUAL);
      free->set_version(0);
      auto* put = txn.add_success()->mutable_request_put();
      put->set_key(key);
      put->set_value(share_key_);
      put->set_lease(*lease);
      txn.add_failure()->mutable_request_range()->set_key(key);
      TxnResponse resp;
      if (absl::Status s = client_->BlindTxn(txn, &resp); !s.ok()) return s;
      const bool ours =
          resp.succeeded() ||
          (resp.responses_size() == 1 && resp.responses(0).response_range().kvs_size() == 1 &&
           resp.responses(0).response_range().kvs(0).lease() == *lease);
      if (ours) {
        usage_lease_ = *lease;
        usage_renewed_ = now;
        usage_writer_ = std::to_string(n);
        return usage_writer_;
      }
    }
    client_->Revoke(*lease).IgnoreError();
    return absl::ResourceExhaustedError(
        StrCat("all ", kMaxUsageWriters, " usage writers are held by live replicas"));
  }

  absl::Status PutUsage(const std::string& writer, std::vector<UsageRow> rows) override {
    int64_t lease;
    {
      MutexLock lock(&usage_mu_);
      if (usage_lease_ == 0 || writer != usage_writer_) {
        return absl::AbortedError(StrCat("usage writer ", writer, " is not held by this replica"));
      }
      lease = usage_lease_;
    }
    // Each transaction holds only while the writer is still this replica's
    // (one comparison, never a row's value), within etcd's limits: 128
    // operations, and well under its 1.5 MiB request.
    constexpr size_t kMaxTxnBytes = 1 << 20;
    size_t next = 0;
    while (next < rows.size()) {
      TxnRequest txn;
      Compare* held = txn.add_compare();
      held->set_key(UsageWriterKey(writer));
      held->set_target(Compare::LEASE);
      held->set_result(Compare::EQUAL);
      held->set_lease(lease);
      size_t bytes = 0;
      for (; next < rows.size() && static_cast<size_t>(txn.success_size()) < kMaxTxnOps; ++next) {
        const UsageRow& row = rows[next];
        const std::string key = UsageKeyIn(prefix_, UsageRowKey(row.key_id, writer));
        if (txn.success_size() > 0 && bytes + key.size() + row.value.size() > kMaxTxnBytes) break;
        bytes += key.size() + row.value.size();
        auto* put = txn.add_success()->mutable_request_put();
        put->set_key(key);
        put->set_value(row.value);
      }
      TxnResponse resp;
      // Sent again when a member went away mid-call: putting the same rows
      // twice is harmless.
      if (absl::Status s = client_->BlindTxn(txn, &resp); !s.ok()) return s;
      if (!resp.succeeded()) {
        MutexLock lock(&usage_mu_);
        if (usage_lease_ == lease) {
          usage_lease_ = 0;
          usage_writer_.clear();
        }
        return absl::AbortedError(
            StrCat("usage writer ", writer, " was taken over: this replica's loan lapsed"));
      }
      advisory_writes_.fetch_add(1, std::memory_order_relaxed);
    }
    return absl::OkStatus();
  }

  // From the copy the watch keeps (usage rows are under P t/): no etcd call.
  absl::StatusOr<std::vector<UsageRow>> GetUsage(std::string_view key_id) const override {
    const std::string row = UsageKeyIn(prefix_, key_id);
    const std::string writers = StrCat(row, "/");
    const size_t base = UsageKeyIn(prefix_, "").size();
    std::vector<UsageRow> rows;
    MutexLock lock(&batch_mu_);
    for (auto it = copy_.lower_bound(row); it != copy_.end(); ++it) {
      if (it->first != row && !absl::StartsWith(it->first, writers)) break;
      rows.push_back(UsageRow{std::string(key_id),
                              UsageWriterOf(std::string_view(it->first).substr(base), key_id),
                              it->second});
    }
    return rows;
  }

  absl::StatusOr<Page> ScanUsage(std::string_view after, size_t limit) const override {
    const std::string base = UsageKeyIn(prefix_, "");
    const std::string start =
        after.empty() ? base : UsageKeyIn(prefix_, StrCat(after, std::string(1, '\0')));
    Page page;
    MutexLock lock(&batch_mu_);
    for (auto it = copy_.lower_bound(start); it != copy_.end(); ++it) {
      if (!absl::StartsWith(it->first, base)) break;
      if (page.rows.size() == limit) {
        page.more = true;
        break;
      }
      page.rows.push_back({it->first.substr(base.size()), it->second});
    }
    return page;
  }

  absl::Status EraseUsage(std::string_view key_id) override {
    const std::string row = UsageKeyIn(prefix_, key_id);
    TxnRequest txn;
    txn.add_success()->mutable_request_delete_range()->set_key(row);
    auto* writers = txn.add_success()->mutable_request_delete_range();
    writers->set_key(StrCat(row, "/"));
    writers->set_range_end(PrefixEnd(StrCat(row, "/")));
    TxnResponse resp;
    return client_->BlindTxn(txn, &resp);
  }

  StoreStats stats() const override {
    return StoreStats{commits_.load(std::memory_order_relaxed),
                      conflicts_.load(std::memory_order_relaxed),
                      txns_.load(std::memory_order_relaxed),  // a batch is one etcd write
                      advisory_writes_.load(std::memory_order_relaxed),
                      client_->calls(),
                      client_->call_seconds()};
  }

  absl::Status Reachable() const override {
    {
      MutexLock lock(&mu_);
      if (!stranded_.ok()) return stranded_;
    }
    // A linearizable read goes through the leader: it answers only with a
    // quorum behind it.
    RangeRequest req;
    req.set_key(HeadKey());
    req.set_count_only(true);
    RangeResponse resp;
    return client_->Range(req, &resp);
  }

  absl::Status Share(std::string_view summary) override {
    MutexLock lock(&share_mu_);
    const absl::Time now = absl::Now();
    if (lease_ != 0 && now - renewed_ >= kShareLease / 3) {
      absl::Status renewed = client_->KeepAlive(lease_);
      if (absl::IsNotFound(renewed)) {
        lease_ = 0;  // expired while etcd was out of reach: the row went with it
      } else if (!renewed.ok()) {
        return renewed;
      } else {
        renewed_ = now;
      }
    }
    if (lease_ == 0) {
      absl::StatusOr<int64_t> lease = client_->Grant(kShareLease);
      if (!lease.ok()) return lease.status();
      lease_ = *lease;
      renewed_ = now;
      shared_.reset();
    }
    if (shared_ == summary) return absl::OkStatus();
    TxnRequest txn;
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(share_key_);
    put->set_value(std::string(summary));
    put->set_lease(lease_);
    TxnResponse resp;
    absl::Status s = client_->BlindTxn(txn, &resp);
    if (!s.ok()) {
      lease_ = 0;  // perhaps expired between renewal and put: start afresh
      return s;
    }
    shared_ = std::string(summary);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> SharedByOthers() const override {
    const std::string prefix = StrCat(prefix_, "replicas/");
    RangeRequest req;
    req.set_key(prefix);
    req.set_range_end(PrefixEnd(prefix));
    RangeResponse resp;
    if (absl::Status s = client_->Range(req, &resp); !s.ok()) return s;
    std::vector<std::string> others;
    for (const auto& kv : resp.kvs()) {
      if (kv.key() != share_key_) others.push_back(kv.value());
    }
    return others;
  }

  absl::StatusOr<std::optional<std::string>> Get(Table table, std::string_view key,
                                                 const StoreSnapshot* at) const override {
    return GetAt(RowKey(table, key), EtcdRevisionOf(at));
  }

  absl::StatusOr<Page> Scan(Table table, std::string_view prefix, std::string_view after,
                            size_t limit, const StoreSnapshot* at) const override {
    return ScanAt(table, prefix, after, limit, EtcdRevisionOf(at));
  }

  // Builds read this replica's writes not yet in the copy over the copy
  // itself; no etcd call. Stale reads are safe: each row read is compared
  // when the batch commits, and sets are guarded by a row read first.
  absl::StatusOr<std::optional<std::string>> GetLatest(Table table,
                                                       std::string_view key) const override {
    const std::string row = RowKey(table, key);
    MutexLock lock(&batch_mu_);
    if (auto it = overlay_.find(row); it != overlay_.end()) return it->second.first;
    if (auto it = copy_.find(row); it != copy_.end()) return it->second;
    return std::nullopt;
  }

  absl::StatusOr<Page> ScanLatest(Table table, std::string_view prefix, std::string_view after,
                                  size_t limit) const override {
    const std::string base = RowKey(table, "");
    const std::string start = ScanStart(table, prefix, after);
    const std::string end = PrefixEnd(RowKey(table, prefix));
    MutexLock lock(&batch_mu_);
    auto written = overlay_.lower_bound(start);
    auto copied = copy_.lower_bound(start);
    const auto written_end = overlay_.end();
    const auto copied_end = copy_.end();
    const auto more_written = [&] { return written != written_end && written->first < end; };
    const auto more_copied = [&] { return copied != copied_end && copied->first < end; };
    Page page;
    // Both in key order; where both hold a key, the write wins.
    while (more_written() || more_copied()) {
      const std::string* key;
      const std::string* value;
      if (more_written() && (!more_copied() || written->first <= copied->first)) {
        if (more_copied() && copied->first == written->first) ++copied;
        key = &written->first;
        value = written->second.first ? &*written->second.first : nullptr;
        ++written;
        if (value == nullptr) continue;  // deleted
      } else {
        key = &copied->first;
        value = &copied->second;
        ++copied;
      }
      if (page.rows.size() == limit) {
        page.more = true;
        break;
      }
      page.rows.push_back({key->substr(base.size()), *value});
    }
    return page;
  }

  absl::StatusOr<std::vector<v1::KeyEvent>> EventsAfter(uint64_t after,
                                                        size_t limit) const override {
    uint64_t head;
    int64_t at;
    {
      MutexLock lock(&mu_);
      head = head_revision();
      at = head_etcd_;
    }
    if (after > head) {
      return absl::FailedPreconditionError(
          StrCat("revision ", after, " is ahead of this store's head ", head));
    }
    const uint64_t latest = std::max(head, known_head_.load(std::memory_order_acquire));
    const uint64_t oldest_retained = OldestRetained(latest, retention_);
    if (after + 1 < oldest_retained) {
      return absl::OutOfRangeError(StrCat("events after ", after, " were trimmed"));
    }
    std::vector<v1::KeyEvent> events;
    if (limit == 0 || after == head) return events;
    RangeRequest req;
    req.set_key(LogKey(after + 1));
    req.set_range_end(LogKey(head + 1));
    req.set_limit(static_cast<int64_t>(limit));
    req.set_revision(at);
    RangeResponse resp;
    if (absl::Status s = client_->Range(req, &resp); !s.ok()) return s;
    for (const auto& kv : resp.kvs()) {
      internal::LogRecord rec;
      if (!rec.ParseFromString(kv.value())) return absl::DataLossError("log record");
      if (rec.event().revision() != after + 1 + events.size()) {
        return absl::OutOfRangeError(StrCat("events after ", after, " were trimmed"));
      }
      events.push_back(std::move(*rec.mutable_event()));
    }
    if (events.empty()) {
      return absl::OutOfRangeError(StrCat("events after ", after, " were trimmed"));
    }
    return events;
  }

  absl::StatusOr<std::vector<v1::AuditEvent>> AuditEvents(std::string_view project_id,
                                                          uint64_t after,
                                                          size_t limit) const override {
    return ReadAudit(StrCat(prefix_, "audit/", project_id, "/"), after, limit);
  }

  absl::StatusOr<std::vector<v1::AuditEvent>> AuditLog(uint64_t after,
                                                       size_t limit) const override {
    return ReadAudit(StrCat(prefix_, "auditlog/"), after, limit);
  }

  absl::Status PutProgress(std::string_view key, std::optional<std::string> value,
                           std::string_view duty) override {
    TxnRequest txn;
    if (!duty.empty()) {
      // Only while the duty's key is still bound to this replica's lease.
      int64_t lease;
      {
        MutexLock lock(&duty_mu_);
        lease = duty_lease_;
      }
      if (lease == 0) return absl::AbortedError(StrCat("this replica does not hold ", duty));
      Compare* held = txn.add_compare();
      held->set_key(StrCat(prefix_, "duties/", duty));
      held->set_target(Compare::LEASE);
      held->set_result(Compare::EQUAL);
      held->set_lease(lease);
    }
    const std::string row = ProgressKeyIn(prefix_, key);
    if (value) {
      auto* put = txn.add_success()->mutable_request_put();
      put->set_key(row);
      put->set_value(std::move(*value));
    } else {
      txn.add_success()->mutable_request_delete_range()->set_key(row);
    }
    TxnResponse resp;
    if (absl::Status s = client_->BlindTxn(txn, &resp); !s.ok()) return s;
    if (!resp.succeeded()) {
      return absl::AbortedError(StrCat("another replica holds ", duty, " now"));
    }
    advisory_writes_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }

  absl::StatusOr<Page> ScanProgress(std::string_view after, size_t limit) const override {
    const std::string base = ProgressKeyIn(prefix_, "");
    RangeRequest req;
    req.set_key(after.empty() ? base : ProgressKeyIn(prefix_, StrCat(after, std::string(1, '\0'))));
    req.set_range_end(PrefixEnd(base));
    req.set_limit(static_cast<int64_t>(limit) + 1);
    RangeResponse resp;
    if (absl::Status s = client_->Range(req, &resp); !s.ok()) return s;
    Page page;
    for (const auto& kv : resp.kvs()) {
      if (page.rows.size() == limit) {
        page.more = true;
        break;
      }
      page.rows.push_back({kv.key().substr(base.size()), kv.value()});
    }
    return page;
  }

  absl::StatusOr<std::optional<std::string>> GetProgress(std::string_view key) const override {
    RangeRequest req;
    req.set_key(ProgressKeyIn(prefix_, key));
    RangeResponse resp;
    if (absl::Status s = client_->Range(req, &resp); !s.ok()) return s;
    if (resp.kvs_size() == 0) return std::nullopt;
    return resp.kvs(0).value();
  }

  // A duty is a key bound to this replica's duty lease: taken when nobody
  // holds it, kept while the lease is renewed, free for another replica
  // once the lease runs out.
  absl::StatusOr<bool> Lead(std::string_view duty) override {
    MutexLock lock(&duty_mu_);
    const absl::Time now = absl::Now();
    if (duty_lease_ != 0 && now - duty_renewed_ >= kDutyLease / 3) {
      absl::Status renewed = client_->KeepAlive(duty_lease_);
      if (absl::IsNotFound(renewed)) {
        duty_lease_ = 0;  // lapsed: another replica may hold the duty now
      } else if (!renewed.ok()) {
        return renewed;
      } else {
        duty_renewed_ = now;
      }
    }
    if (duty_lease_ == 0) {
      absl::StatusOr<int64_t> lease = client_->Grant(kDutyLease);
      if (!lease.ok()) return lease.status();
      duty_lease_ = *lease;
      duty_renewed_ = now;
    }
    const std::string key = StrCat(prefix_, "duties/", duty);
    TxnRequest txn;
    Compare* free = txn.add_compare();
    free->set_key(key);
    free->set_target(Compare::VERSION);
    free->set_result(Compare::EQUAL);
    free->set_version(0);
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(share_key_);
    put->set_lease(duty_lease_);
    txn.add_failure()->mutable_request_range()->set_key(key);
    TxnResponse resp;
    if (absl::Status s = client_->BlindTxn(txn, &resp); !s.ok()) return s;
    return resp.succeeded() ||
           (resp.responses_size() == 1 && resp.responses(0).response_range().kvs_size() == 1 &&
            resp.responses(0).response_range().kvs(0).lease() == duty_lease_);
  }

  std::unique_ptr<StoreSnapshot> Snapshot() override {
    MutexLock lock(&mu_);
    return std::make_unique<EtcdSnapshot>(head_revision(), head_etcd_);
  }

  void SetCommitListener(CommitListener listener) override {
    MutexLock lock(&mu_);
    listener_ = std::move(listener);
  }

 private:
  // Group commit. A mutation appended but not yet committed is pending:
  // queued, or in the batch in flight (at most one).
  struct Pending {
    uint64_t revision = 0;
    internal::LogRecord log;  // event and audit record; the nonce is the batch's
    std::vector<Write> writes;
    std::vector<Precondition> reads;  // those etcd checks
  };

  std::string RowKey(Table table, std::string_view key) const {
    return RowKeyIn(prefix_, table, key);
  }
  std::string LogKey(uint64_t revision) const { return LogKeyIn(prefix_, revision); }

  // Up to `limit` audit records under `prefix` (keyed by decimal revision)
  // after revision `after`, at the head.
  absl::StatusOr<std::vector<v1::AuditEvent>> ReadAudit(const std::string& prefix, uint64_t after,
                                                        size_t limit) const {
    RangeRequest req;
    req.set_key(StrCat(prefix, Decimal(after + 1)));
    req.set_range_end(PrefixEnd(prefix));
    req.set_limit(static_cast<int64_t>(limit));
    req.set_revision(EtcdRevisionOf(nullptr));
    RangeResponse resp;
    if (absl::Status s = client_->Range(req, &resp); !s.ok()) return s;
    std::vector<v1::AuditEvent> records;
    for (const auto& kv : resp.kvs()) {
      if (!records.emplace_back().ParseFromString(kv.value())) {
        return absl::DataLossError("audit record");
      }
    }
    return records;
  }
  std::string HeadKey() const { return HeadKeyIn(prefix_); }

  // The etcd revision a read at `at` (the head when null) uses.
  int64_t EtcdRevisionOf(const StoreSnapshot* at) const {
    if (at != nullptr) return static_cast<const EtcdSnapshot*>(at)->etcd_revision();
    MutexLock lock(&mu_);
    return head_etcd_;
  }

  // `etcd_revision` 0 reads the latest; the read ends by `deadline` at the
  // latest.
  absl::StatusOr<std::optional<std::string>> GetAt(
      const std::string& key, int64_t etcd_revision,
      absl::Time deadline = absl::InfiniteFuture()) const {
    RangeRequest req;
    req.set_key(key);
    req.set_revision(etcd_revision);
    RangeResponse resp;
    if (absl::Status s = client_->Range(req, &resp, deadline); !s.ok()) return s;
    if (resp.kvs_size() == 0) return std::nullopt;
    return resp.kvs(0).value();
  }

  // Where a scan of `prefix` resuming after the row `after` (empty: from the
  // start) begins: the smallest key greater than `after`.
  std::string ScanStart(Table table, std::string_view prefix, std::string_view after) const {
    return after.empty() ? RowKey(table, prefix)
                         : RowKey(table, StrCat(after, std::string(1, '\0')));
  }

  absl::StatusOr<Page> ScanAt(Table table, std::string_view prefix, std::string_view after,
                              size_t limit, int64_t etcd_revision) const {
    const std::string base = RowKey(table, "");
    RangeRequest req;
    req.set_key(ScanStart(table, prefix, after));
    req.set_range_end(PrefixEnd(RowKey(table, prefix)));
    req.set_limit(static_cast<int64_t>(limit) + 1);
    req.set_revision(etcd_revision);
    RangeResponse resp;
    if (absl::Status s = client_->Range(req, &resp); !s.ok()) return s;
    Page page;
    for (const auto& kv : resp.kvs()) {
      if (page.rows.size() == limit) {
        page.more = true;
        break;
      }
      page.rows.push_back({kv.key().substr(base.size()), kv.value()});
    }
    return page;
  }

  // The row still holds what was read: its value, or (read as absent) no
  // version at all.
  void AddCompare(TxnRequest& txn, const Precondition& read) const {
    Compare* c = txn.add_compare();
    c->set_key(RowKey(read.table, read.key));
    c->set_result(Compare::EQUAL);
    if (read.value) {
      c->set_target(Compare::VALUE);
      c->set_value(*read.value);
    } else {
      c->set_target(Compare::VERSION);  // a missing key has version 0
      c->set_version(0);
    }
  }

  void AddWrite(TxnRequest& txn, const Write& w) const {
    RequestOp* op = txn.add_success();
    if (w.value) {
      op->mutable_request_put()->set_key(RowKey(w.table, w.key));
      op->mutable_request_put()->set_value(*w.value);
    } else {
      op->mutable_request_delete_range()->set_key(RowKey(w.table, w.key));
    }
  }

  uint64_t NextRevision() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(batch_mu_) {
    return (pending_ > 0 ? appended_ : std::max(committed_, known_head_.load())) + 1;
  }

  // Sends what is queued (up to etcd's limits per transaction) and records
  // the outcome for the appenders' Syncs. Called holding batch_mu_, which it
  // releases while etcd answers.
  void Flush() ABSL_EXCLUSIVE_LOCKS_REQUIRED(batch_mu_) {
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
      committed_ = batch.back().revision;
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
        it = it->second.second > committed_ ? overlay_.erase(it) : std::next(it);
      }
      pending_ = 0;
    }
    batch_done_.SignalAll();
  }

  // One etcd transaction for `batch` (consecutive revisions): true once etcd
  // has it, false when the head moved or a row read changed.
  absl::StatusOr<bool> SendBatch(std::vector<Pending>& batch) {
    const std::string nonce = RandomBase62(22);
    const uint64_t first = batch.front().revision, last = batch.back().revision;
    TxnRequest txn;
    Compare* head = txn.add_compare();
    head->set_key(HeadKey());
    head->set_target(Compare::VALUE);
    head->set_result(Compare::EQUAL);
    head->set_value(std::to_string(first - 1));
    // etcd refuses a transaction that writes one key twice: the last write
    // of each key wins, as it would one after another.
    std::map<std::string, std::optional<std::string>> puts;
    for (Pending& p : batch) {
      for (const Precondition& read : p.reads) AddCompare(txn, read);
      for (Write& w : p.writes) puts[RowKey(w.table, w.key)] = std::move(w.value);
      p.log.set_nonce(nonce);
      const uint64_t r = p.revision;
      std::string audit = p.log.audit().SerializeAsString();
      puts[AuditKeyIn(prefix_, p.log.audit().project_id(), r)] = audit;
      puts[AuditLogKeyIn(prefix_, r)] = std::move(audit);
      puts[LogKey(r)] = p.log.SerializeAsString();
      if (r > retention_) puts[LogKey(r - retention_)] = std::nullopt;
    }
    puts[HeadKey()] = std::to_string(last);
    for (auto& [key, value] : puts) {
      RequestOp* op = txn.add_success();
      if (value) {
        op->mutable_request_put()->set_key(key);
        op->mutable_request_put()->set_value(std::move(*value));
      } else {
        op->mutable_request_delete_range()->set_key(key);
      }
    }
    txn.add_failure()->mutable_request_range()->set_key(HeadKey());

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
        absl::StatusOr<std::optional<std::string>> there = GetAt(LogKey(first), 0, deadline);
        if (there.ok() && there->has_value()) {
          internal::LogRecord found;
          if (!found.ParseFromString(**there)) return absl::DataLossError("log record");
          if (found.nonce() == nonce) {
            commits_.fetch_add(batch.size(), std::memory_order_relaxed);
            Learn(last);
            return true;
          }
          Learn(first);
          return false;
        }
        if (absl::Now() >= deadline) {
          return absl::UnavailableError(
              StrCat("etcd did not answer: ", last_error.error_message()));
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
        Learn(last);
        return true;
      }
      if (s.ok() && !uncertain) {
        conflicts_.fetch_add(1, std::memory_order_relaxed);
        // The head as etcd has it, so the next attempt starts from it.
        if (resp.responses_size() > 0 && resp.responses(0).response_range().kvs_size() > 0) {
          uint64_t now = 0;
          if (absl::SimpleAtoi(resp.responses(0).response_range().kvs(0).value(), &now)) {
            Learn(now);
          }
        }
        return false;
      }
      if (!s.ok() && !MemberGone(s) && !uncertain) return FromGrpc(s, "txn");
      if (!s.ok()) last_error = s;
      uncertain = true;
    }
  }

  void Learn(uint64_t revision) {
    uint64_t known = known_head_.load(std::memory_order_relaxed);
    while (known < revision &&
           !known_head_.compare_exchange_weak(known, revision, std::memory_order_acq_rel)) {
    }
  }

  // The watcher thread: follows P log/ through P t/ (the log, the meta
  // keys, the replicas' rows and the table rows) from just after the head,
  // keeps the copy and publishes each revision in order. Reconnects (to the
  // next member) when the stream breaks.
  void WatchLog() {
    while (true) {
      size_t member = client_->current();
      auto ctx = std::make_unique<grpc::ClientContext>();
      ctx->AddMetadata("hasleader", "true");
      int64_t from;
      {
        MutexLock lock(&mu_);
        if (stopping_) return;
        watch_ctx_ = ctx.get();
        watch_member_ = member;
        from = head_etcd_ + 1;
      }
      auto stream = client_->watch(member).Watch(ctx.get());
      etcdserverpb::WatchRequest req;
      auto* create = req.mutable_create_request();
      create->set_key(StrCat(prefix_, "log/"));
      create->set_range_end(PrefixEnd(StrCat(prefix_, "t/")));
      create->set_start_revision(from);
      // Progress notifications move the read revision on while nothing
      // changes, so that reads at the head never fall behind a compaction.
      create->set_progress_notify(true);
      absl::Status ended = absl::UnavailableError("watch stream ended");
      if (stream->Write(req)) {
        etcdserverpb::WatchResponse resp;
        while (stream->Read(&resp)) {
          if (resp.compact_revision() != 0) {
            // Cut off for longer than etcd keeps history: catch up from what
            // etcd holds now, then watch on from there.
            ended = CatchUp();
            if (ended.ok()) {
              ended = absl::OutOfRangeError("etcd compacted where the watch was; caught up");
            }
            break;
          }
          if (resp.canceled()) {
            ended = absl::DataLossError(
                StrCat("etcd cancelled the watch of the log: ", resp.cancel_reason()));
            break;
          }
          absl::Status applied = Apply(resp);
          if (!applied.ok()) {
            ended = applied;
            break;
          }
        }
      }
      ctx->TryCancel();
      stream->Finish().ok();  // the reason is in `ended`
      {
        MutexLock lock(&mu_);
        watch_ctx_ = nullptr;
        if (stopping_) return;
        watch_error_ = ended;
      }
      spdlog::warn("etcd store: watch of the log via {} ended ({}); resuming",
                   client_->endpoint(member), ended.ToString());
      client_->MoveOn(member);
      absl::SleepFor(absl::Milliseconds(100));
    }
  }

  // Waits up to `budget` for the head to reach `revision`, which etcd has
  // committed. The watch may be on a member that stopped answering (its
  // connection open, so the stream never breaks): it is ended, and WatchLog
  // resumes on the current member, when it brings nothing meanwhile for
  // kWatchSilence, or for kWatchGrace when calls already left its member
  // as gone.
  bool WaitPublished(uint64_t revision, absl::Duration budget) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Time until = absl::Now() + budget;
    uint64_t seen = head_revision();
    absl::Time moved = absl::Now();  // when the head last moved
    while (head_revision() < revision) {
      const absl::Time now = absl::Now();
      if (now >= until) return false;
      const absl::Duration patience =
          watch_member_ == client_->current() ? kWatchSilence : kWatchGrace;
      if (head_revision() != seen) {
        seen = head_revision();
        moved = now;
      } else if (now - moved >= patience) {
        if (watch_ctx_ != nullptr) {
          spdlog::warn(
              "etcd store: the watch of the log via {} brought nothing for {} while revision {} "
              "is committed; moving it to {}",
              client_->endpoint(watch_member_), absl::FormatDuration(now - moved), revision,
              client_->endpoint(client_->current()));
          watch_ctx_->TryCancel();
        }
        moved = now;
      }
      published_.WaitFor(&mu_, std::min(until, moved + patience) - now,
                         [&] { return head_revision() != seen; });
    }
    return true;
  }

  // Forgets this replica's committed writes the copy now holds, as of
  // `head`. (Pending ones stay: when another replica took their revision,
  // their batch is lost and Flush drops them.)
  void DropCopiedWrites(uint64_t head) ABSL_EXCLUSIVE_LOCKS_REQUIRED(batch_mu_) {
    const uint64_t copied = std::min(head, committed_);
    for (auto it = overlay_.begin(); it != overlay_.end();) {
      it = it->second.second <= copied ? overlay_.erase(it) : std::next(it);
    }
  }

  // Moves the head to `rec`'s revision (the next one) and tells the listener.
  void Publish(const internal::LogRecord& rec) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    head_.store(rec.event().revision(), std::memory_order_release);
    Learn(rec.event().revision());
    if (listener_) listener_(rec.event(), rec.audit());
  }

  // What the watch would have brought since the head, read instead: the log
  // records after it and every row, at one etcd revision. For a replica whose
  // watch start etcd compacted away (docs/design.md, "The etcd store").
  absl::Status CatchUp() {
    RangeRequest head_req;
    head_req.set_key(HeadKey());
    RangeResponse head_resp;
    if (absl::Status s = client_->Range(head_req, &head_resp); !s.ok()) return s;
    uint64_t head = 0;
    if (head_resp.kvs_size() != 1 || !absl::SimpleAtoi(head_resp.kvs(0).value(), &head)) {
      return absl::DataLossError("no readable head revision in etcd");
    }
    const int64_t at = head_resp.header().revision();
    const absl::Status trimmed = absl::DataLossError(
        StrCat("revisions after ", head_revision(),
               " left the event log before this replica heard them; restart it"));
    std::vector<internal::LogRecord> missed;
    for (uint64_t next = head_revision() + 1; next <= head;) {
      RangeRequest req;
      req.set_key(LogKey(next));
      req.set_range_end(LogKey(head + 1));
      req.set_revision(at);
      req.set_limit(1000);
      RangeResponse resp;
      if (absl::Status s = client_->Range(req, &resp); !s.ok()) return s;
      if (resp.kvs_size() == 0) return Strand(trimmed);
      for (const auto& kv : resp.kvs()) {
        internal::LogRecord rec;
        if (!rec.ParseFromString(kv.value())) return absl::DataLossError("log record");
        if (rec.event().revision() != next) return Strand(trimmed);
        ++next;
        missed.push_back(std::move(rec));
      }
    }
    absl::StatusOr<std::map<std::string, std::string>> rows =
        ReadAll(*client_, StrCat(prefix_, "t/"), at);
    if (!rows.ok()) return rows.status();
    MutexLock lock(&mu_);
    {
      MutexLock batch(&batch_mu_);
      copy_ = *std::move(rows);
      DropCopiedWrites(head);
    }
    for (const internal::LogRecord& rec : missed) Publish(rec);
    head_etcd_ = std::max(head_etcd_, at);
    published_.SignalAll();
    spdlog::warn(
        "etcd store: the watch's start was compacted; caught up to revision {} ({} missed)", head,
        missed.size());
    return absl::OkStatus();
  }

  // What the log lost, this replica can never publish: it stays so, and
  // reports it (Reachable) until it is restarted.
  absl::Status Strand(absl::Status why) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    stranded_ = why;
    return why;
  }

  // One answer of the watch. etcd never splits the events of one etcd
  // revision (one transaction) between answers, so the copy and the head
  // move together, a whole batch at a time: a build never sees half of one.
  absl::Status Apply(const etcdserverpb::WatchResponse& resp) {
    MutexLock lock(&mu_);
    const std::string log = StrCat(prefix_, "log/"), rows = StrCat(prefix_, "t/");
    std::vector<std::pair<internal::LogRecord, int64_t>> heard;  // and its etcd revision
    {
      MutexLock batch(&batch_mu_);
      uint64_t head = head_revision();
      for (const auto& e : resp.events()) {
        const std::string& key = e.kv().key();
        if (absl::StartsWith(key, rows)) {
          if (e.type() == mvccpb::Event::PUT) {
            copy_[key] = e.kv().value();
          } else {
            copy_.erase(key);
          }
          continue;
        }
        // The rest: the head, replicas' receipts, log records trimmed.
        if (!absl::StartsWith(key, log) || e.type() != mvccpb::Event::PUT) continue;
        internal::LogRecord rec;
        if (!rec.ParseFromString(e.kv().value())) return absl::DataLossError("log record");
        const uint64_t revision = rec.event().revision();
        if (revision <= head) continue;
        if (revision != head + 1) {
          return absl::InternalError(StrCat("log gap: head ", head, ", next heard ", revision));
        }
        head = revision;
        heard.emplace_back(std::move(rec), e.kv().mod_revision());
      }
      DropCopiedWrites(head);
    }
    for (auto& [rec, etcd_revision] : heard) {
      head_etcd_ = etcd_revision;
      Publish(rec);
    }
    // A progress notification (no events; etcd sends one only to a watcher
    // that has caught up) says every change of the log up to its revision was
    // heard, so the head's state holds up to there and reads may use it. Not
    // so for other answers: a catch-up batch names the current revision even
    // when more events follow.
    if (resp.events_size() == 0 && !resp.created()) {
      head_etcd_ = std::max(head_etcd_, resp.header().revision());
    }
    watch_error_ = absl::OkStatus();
    published_.SignalAll();
    return absl::OkStatus();
  }

  const std::unique_ptr<EtcdClient> client_;
  const std::string prefix_;
  const uint64_t retention_;
  const absl::Duration call_timeout_;
  const std::string store_id_;

  mutable Mutex mu_;
  mutable CondVar published_;
  std::atomic<uint64_t> head_;              // published; written under mu_
  int64_t head_etcd_ ABSL_GUARDED_BY(mu_);  // the etcd revision of head_'s state
  std::atomic<uint64_t> known_head_;        // the latest revision known committed
  CommitListener listener_ ABSL_GUARDED_BY(mu_);
  absl::Status watch_error_ ABSL_GUARDED_BY(mu_);
  absl::Status stranded_ ABSL_GUARDED_BY(mu_);  // revisions it missed left the log
  grpc::ClientContext* watch_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t watch_member_ ABSL_GUARDED_BY(mu_) = 0;  // the member watch_ctx_'s stream is on
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watcher_;

  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> conflicts_{0};
  std::atomic<uint64_t> advisory_writes_{0};
  std::atomic<uint64_t> txns_{0};

  // Group commit (see Pending).
  // etcd's default --max-txn-ops is 128 operations per list of a transaction.
  static constexpr size_t kMaxTxnOps = 128;
  static constexpr size_t kMaxBatch = 32;
  mutable Mutex batch_mu_;
  CondVar batch_done_;
  std::deque<Pending> queued_ ABSL_GUARDED_BY(batch_mu_);
  bool flushing_ ABSL_GUARDED_BY(batch_mu_) = false;
  size_t pending_ ABSL_GUARDED_BY(batch_mu_) = 0;
  uint64_t appended_ ABSL_GUARDED_BY(batch_mu_) = 0;   // the last pending revision
  uint64_t committed_ ABSL_GUARDED_BY(batch_mu_) = 0;  // the last this store committed
  // What this replica's mutations wrote that the copy does not hold yet,
  // by etcd key: (value, revision of the write). Pending when that revision
  // is after committed_, committed (and on its way through the watch)
  // otherwise.
  std::map<std::string, std::pair<std::optional<std::string>, uint64_t>> overlay_
      ABSL_GUARDED_BY(batch_mu_);
  // Every row (P t/...) as of the published head (and advisory rows as the
  // watch brought them), kept by the watch: what builds read. Taken after
  // mu_ when both are held.
  std::map<std::string, std::string> copy_ ABSL_GUARDED_BY(batch_mu_);
  static constexpr absl::Duration kCatchUpWait = absl::Seconds(1);
  // How long the watch may bring nothing while a committed revision waits
  // for it (WaitPublished); on loopback it brings one within milliseconds.
  // Shorter when calls have already left the watch's member as gone.
  static constexpr absl::Duration kWatchSilence = absl::Milliseconds(500);
  static constexpr absl::Duration kWatchGrace = absl::Milliseconds(50);
  // Revisions of lost batches, until their appenders' Syncs take the answer.
  std::map<uint64_t, absl::Status> failed_ ABSL_GUARDED_BY(batch_mu_);

  // Usage: the writer this replica holds, bound to its own lease (renewed
  // at each UsageWriter call, which the authority makes every flush).
  static constexpr absl::Duration kUsageLease = absl::Seconds(60);
  static constexpr int kMaxUsageWriters = 1000;
  std::string UsageWriterKey(std::string_view writer) const {
    return StrCat(prefix_, "usage-writers/", writer);
  }
  Mutex usage_mu_;
  int64_t usage_lease_ ABSL_GUARDED_BY(usage_mu_) = 0;
  absl::Time usage_renewed_ ABSL_GUARDED_BY(usage_mu_);
  std::string usage_writer_ ABSL_GUARDED_BY(usage_mu_);

  // Share: this replica's row, bound to a lease so that it outlives the
  // replica by at most kShareLease.
  static constexpr absl::Duration kShareLease = absl::Seconds(5);

  // Duties (Lead): one lease for all of them, renewed as they are asked for.
  static constexpr absl::Duration kDutyLease = absl::Seconds(5);
  Mutex duty_mu_;
  int64_t duty_lease_ ABSL_GUARDED_BY(duty_mu_) = 0;
  absl::Time duty_renewed_ ABSL_GUARDED_BY(duty_mu_);
  const std::string share_key_;
  Mutex share_mu_;
  int64_t lease_ ABSL_GUARDED_BY(share_mu_) = 0;
  absl::Time renewed_ ABSL_GUARDED_BY(share_mu_);
  std::optional<std::string> shared_ ABSL_GUARDED_BY(share_mu_);  // what the row holds
};

}  // namespace

namespace {

absl::StatusOr<std::unique_ptr<EtcdClient>> Connect(const EtcdStoreOptions& options) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("no etcd endpoints");
  if (options.prefix.empty()) return absl::InvalidArgumentError("the etcd prefix is empty");
  if (options.event_retention == 0) {
    return absl::InvalidArgumentError("event retention must be at least 1");
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ChannelCredentials(ClientTlsFiles{options.ca_file, options.cert_file, options.key_file});
  if (!credentials.ok()) return credentials.status();
  if (options.attempt_timeout <= absl::ZeroDuration() ||
      options.attempt_timeout > options.call_timeout) {
    return absl::InvalidArgumentError("the etcd attempt timeout must be within the call timeout");
  }
  return std::make_unique<EtcdClient>(options.endpoints, *credentials, options.call_timeout,
                                      options.attempt_timeout);
}

// How many keys `prefix` holds.
absl::StatusOr<int64_t> CountKeys(EtcdClient& client, const std::string& prefix) {
  RangeRequest req;
  req.set_key(prefix);
  req.set_range_end(PrefixEnd(prefix));
  req.set_count_only(true);
  RangeResponse resp;
  if (absl::Status s = client.Range(req, &resp); !s.ok()) return s;
  return resp.count();
}

// Puts, sent in transactions within etcd's default limits (128 operations,
// 1.5 MiB per request).
class BulkWriter {
 public:
  explicit BulkWriter(EtcdClient& client) : client_(client) {}

  absl::Status Put(std::string key, std::string value) {
    bytes_ += key.size() + value.size();
    auto* put = txn_.add_success()->mutable_request_put();
    put->set_key(std::move(key));
    put->set_value(std::move(value));
    if (txn_.success_size() >= 100 || bytes_ >= (1 << 20)) return Flush();
    return absl::OkStatus();
  }

  absl::Status Flush() {
    if (txn_.success_size() == 0) return absl::OkStatus();
    TxnResponse resp;
    absl::Status s = client_.BlindTxn(txn_, &resp);
    txn_.Clear();
    bytes_ = 0;
    return s;
  }

 private:
  EtcdClient& client_;
  TxnRequest txn_;
  size_t bytes_ = 0;
};

}  // namespace

absl::StatusOr<ImportReport> ImportIntoEtcd(const KeyStore& source,
                                            const EtcdStoreOptions& options) {
  absl::StatusOr<std::unique_ptr<EtcdClient>> client = Connect(options);
  if (!client.ok()) return client.status();
  const std::string& prefix = options.prefix;
  absl::StatusOr<int64_t> present = CountKeys(**client, prefix);
  if (!present.ok()) return present.status();
  if (*present > 0) {
    return absl::FailedPreconditionError(
        StrCat("etcd prefix ", prefix, " is not empty (", *present,
               " keys): an import goes only into an empty prefix"));
  }
  ImportReport report;
  report.store_id = source.store_id();
  report.head = source.head_revision();
  const uint64_t oldest_event = OldestRetained(report.head, options.event_retention);
  // Refused before anything is written: the events to keep must be there.
  if (absl::StatusOr<std::vector<v1::KeyEvent>> first = source.EventsAfter(oldest_event - 1, 1);
      !first.ok()) {
    if (!absl::IsOutOfRange(first.status())) return first.status();
    return absl::OutOfRangeError(
        StrCat("the source store keeps fewer events than --event-retention ",
               options.event_retention, ": give the value it was run with"));
  }
  BulkWriter out(**client);

  for (Table table : kAllTables) {
    std::string after;
    for (;;) {
      absl::StatusOr<Page> page = source.Scan(table, "", after, 1000);
      if (!page.ok()) return page.status();
      for (Row& row : page->rows) {
        after = row.key;
        ++report.rows;
        if (absl::Status s = out.Put(RowKeyIn(prefix, table, row.key), std::move(row.value));
            !s.ok()) {
          return s;
        }
      }
      if (!page->more) break;
    }
  }

  for (std::string after;;) {
    absl::StatusOr<Page> page = source.ScanUsage(after, 1000);
    if (!page.ok()) return page.status();
    for (Row& row : page->rows) {
      after = row.key;
      ++report.rows;
      if (absl::Status s = out.Put(UsageKeyIn(prefix, row.key), std::move(row.value)); !s.ok()) {
        return s;
      }
    }
    if (!page->more) break;
  }
  // Progress rows: webhooks carry on where they were.
  for (std::string after;;) {
    absl::StatusOr<Page> page = source.ScanProgress(after, 1000);
    if (!page.ok()) return page.status();
    for (Row& row : page->rows) {
      after = row.key;
      ++report.rows;
      if (absl::Status s = out.Put(ProgressKeyIn(prefix, row.key), std::move(row.value)); !s.ok()) {
        return s;
      }
    }
    if (!page->more) break;
  }

  // Audit records, by project: every project's, then those of none. Each
  // retained revision's record also goes into its log record.
  std::vector<std::string> projects = {""};
  for (std::string after;;) {
    absl::StatusOr<Page> page = source.Scan(Table::kProjects, "", after, 1000);
    if (!page.ok()) return page.status();
    for (const Row& row : page->rows) projects.push_back(after = row.key);
    if (!page->more) break;
  }
  std::map<uint64_t, v1::AuditEvent> recent;
  for (const std::string& project : projects) {
    for (uint64_t after = 0;;) {
      absl::StatusOr<std::vector<v1::AuditEvent>> audit = source.AuditEvents(project, after, 1000);
      if (!audit.ok()) return audit.status();
      for (v1::AuditEvent& a : *audit) {
        after = a.revision();
        ++report.audit;
        std::string record = a.SerializeAsString();
        if (absl::Status s = out.Put(AuditKeyIn(prefix, project, a.revision()), record); !s.ok()) {
          return s;
        }
        if (absl::Status s = out.Put(AuditLogKeyIn(prefix, a.revision()), std::move(record));
            !s.ok()) {
          return s;
        }
        if (a.revision() >= oldest_event) recent.emplace(a.revision(), std::move(a));
      }
      if (audit->empty()) break;
    }
  }
  if (report.audit != report.head) {
    return absl::DataLossError(StrCat("found ", report.audit, " audit records for ", report.head,
                                      " revisions in the source store"));
  }

  for (uint64_t after = oldest_event - 1; after < report.head;) {
    absl::StatusOr<std::vector<v1::KeyEvent>> events = source.EventsAfter(after, 1000);
    if (!events.ok()) return events.status();
    if (events->empty()) return absl::DataLossError("the source store's events end early");
    for (v1::KeyEvent& e : *events) {
      after = e.revision();
      internal::LogRecord rec;
      *rec.mutable_audit() = recent[e.revision()];
      *rec.mutable_event() = std::move(e);
      ++report.events;
      if (absl::Status s = out.Put(LogKeyIn(prefix, after), rec.SerializeAsString()); !s.ok()) {
        return s;
      }
    }
  }
  if (absl::Status s = out.Flush(); !s.ok()) return s;

  // Last, in one transaction: the store exists only once all of it is there.
  TxnRequest finish;
  Compare* missing = finish.add_compare();
  missing->set_key(IdKeyIn(prefix));
  missing->set_target(Compare::VERSION);
  missing->set_result(Compare::EQUAL);
  missing->set_version(0);
  auto put = [&](std::string key, std::string value) {
    auto* p = finish.add_success()->mutable_request_put();
    p->set_key(std::move(key));
    p->set_value(std::move(value));
  };
  put(IdKeyIn(prefix), report.store_id);
  put(HeadKeyIn(prefix), std::to_string(report.head));
  TxnResponse resp;
  if (absl::Status s = (*client)->BlindTxn(finish, &resp); !s.ok()) return s;
  // Sent twice when a member went away mid-call: the id tells whose it is.
  RangeRequest id;
  id.set_key(IdKeyIn(prefix));
  RangeResponse id_resp;
  if (absl::Status s = (*client)->Range(id, &id_resp); !s.ok()) return s;
  if (id_resp.kvs_size() != 1 || id_resp.kvs(0).value() != report.store_id) {
    return absl::AbortedError(StrCat("a store was created under ", prefix,
                                     " while importing; delete the prefix and import again"));
  }
  return report;
}

absl::StatusOr<std::unique_ptr<KeyStore>> OpenEtcdStore(const EtcdStoreOptions& options) {
  absl::StatusOr<std::unique_ptr<EtcdClient>> connected = Connect(options);
  if (!connected.ok()) return connected.status();
  std::unique_ptr<EtcdClient> client = *std::move(connected);
  const std::string id_key = IdKeyIn(options.prefix);
  const std::string head_key = HeadKeyIn(options.prefix);

  // A prefix with keys but no store id holds an import cut short (or still
  // running): creating a store over it would mix two states.
  RangeRequest id;
  id.set_key(id_key);
  RangeResponse id_resp;
  if (absl::Status s = client->Range(id, &id_resp); !s.ok()) return s;
  if (id_resp.kvs_size() == 0) {
    absl::StatusOr<int64_t> present = CountKeys(*client, options.prefix);
    if (!present.ok()) return present.status();
    if (*present > 0) {
      return absl::FailedPreconditionError(
          StrCat("etcd prefix ", options.prefix, " holds ", *present,
                 " keys but no store id: an import into it is running or was cut short; "
                 "delete the prefix and import again"));
    }
  }

  // Create the store unless it exists; the first replica to commit wins.
  TxnRequest create;
  Compare* missing = create.add_compare();
  missing->set_key(id_key);
  missing->set_target(Compare::VERSION);
  missing->set_result(Compare::EQUAL);
  missing->set_version(0);
  auto* put_id = create.add_success()->mutable_request_put();
  put_id->set_key(id_key);
  put_id->set_value(GenerateId("st_", 16));
  auto* put_head = create.add_success()->mutable_request_put();
  put_head->set_key(head_key);
  put_head->set_value("0");
  TxnResponse created;
  if (absl::Status s = client->BlindTxn(create, &created); !s.ok()) return s;

  // The id and the head, and the etcd revision at which that head holds.
  RangeRequest req;
  req.set_key(StrCat(options.prefix, "meta/"));
  req.set_range_end(PrefixEnd(StrCat(options.prefix, "meta/")));
  RangeResponse resp;
  if (absl::Status s = client->Range(req, &resp); !s.ok()) return s;
  std::string store_id;
  uint64_t head = 0;
  bool have_head = false;
  for (const auto& kv : resp.kvs()) {
    if (kv.key() == id_key) store_id = kv.value();
    if (kv.key() == head_key) have_head = absl::SimpleAtoi(kv.value(), &head);
  }
  if (store_id.empty() || !have_head) {
    return absl::DataLossError(
        StrCat("etcd prefix ", options.prefix, " holds no readable store id and head revision"));
  }
  // The rows at that same etcd revision: the copy the watch keeps from there.
  const int64_t at = resp.header().revision();
  absl::StatusOr<std::map<std::string, std::string>> rows =
      ReadAll(*client, StrCat(options.prefix, "t/"), at);
  if (!rows.ok()) return rows.status();
  return std::unique_ptr<KeyStore>(
      new EtcdStore(std::move(client), options, std::move(store_id), head, at, *std::move(rows)));
}

}  // namespace latchkey
