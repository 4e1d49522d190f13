// A client of etcd v3's gRPC API for the etcd store: one channel per member,
// calls that move on to the next member when one is gone, and the few
// request shapes the store builds more than once.
#ifndef LATCHKEY_AUTHORITY_STORE_ETCD_INTERNAL_ETCD_CLIENT_H_
#define LATCHKEY_AUTHORITY_STORE_ETCD_INTERNAL_ETCD_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "authority/store/etcd/etcd_store.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace latchkey {

// A gRPC failure as a Status, worded "etcd <what>: <etcd's message>".
absl::Status FromGrpc(const grpc::Status& s, std::string_view what);

// A failure after which another member may answer: the member is down,
// silent past the attempt's deadline, or without a leader ("etcdserver: no
// leader", "leader changed" and "request timed out" are all UNAVAILABLE).
bool MemberGone(const grpc::Status& s);

// How long to wait between two rounds over every member (an election).
inline constexpr absl::Duration kRoundPause = absl::Milliseconds(50);

// etcd's default --max-txn-ops: operations per list of one transaction.
inline constexpr size_t kMaxTxnOps = 128;

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
             absl::Duration call_timeout, absl::Duration attempt_timeout);

  size_t size() const { return endpoints_.size(); }
  size_t current() const { return current_.load(std::memory_order_relaxed); }
  const std::string& endpoint(size_t i) const { return endpoints_[i]; }
  etcdserverpb::Watch::Stub& watch(size_t i) { return *watch_[i]; }

  // Moves on from member `from` (if no other call has already).
  void MoveOn(size_t from);

  // When a call starting now must have its answer.
  absl::Time CallDeadline() const { return absl::Now() + call_timeout_; }

  // One attempt, ending by `deadline` at the latest.
  void Prepare(grpc::ClientContext& ctx, absl::Time deadline) const;

  uint64_t calls() const { return calls_.load(std::memory_order_relaxed); }
  double call_seconds() const { return call_micros_.load(std::memory_order_relaxed) / 1e6; }

  // Reads are idempotent: tried on every member in turn.
  absl::Status Range(const etcdserverpb::RangeRequest& req, etcdserverpb::RangeResponse* resp,
                     absl::Time deadline = absl::InfiniteFuture());

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
  absl::StatusOr<int64_t> Grant(absl::Duration ttl);

  // Renews `lease`; NOT_FOUND when it has already expired.
  absl::Status KeepAlive(int64_t lease);

  // Ends `lease` now, deleting the keys bound to it.
  absl::Status Revoke(int64_t lease);

  // One attempt on the current member, ending by `deadline` at the latest;
  // the caller resolves an unknown outcome.
  grpc::Status Txn(const etcdserverpb::TxnRequest& req, etcdserverpb::TxnResponse* resp,
                   absl::Time deadline);

  // Writes with no precondition are idempotent too.
  absl::Status BlindTxn(const etcdserverpb::TxnRequest& req, etcdserverpb::TxnResponse* resp);

 private:
  void Count(absl::Time start);

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

// A client for options' endpoints, TLS and timeouts; INVALID_ARGUMENT for
// options no store can run with.
absl::StatusOr<std::unique_ptr<EtcdClient>> ConnectEtcd(const EtcdStoreOptions& options);

// Every key under `prefix` and its value at `etcd_revision`, read in pages.
absl::StatusOr<std::map<std::string, std::string>> ReadAll(EtcdClient& client,
                                                           const std::string& prefix,
                                                           int64_t etcd_revision);

// How many keys `prefix` holds.
absl::StatusOr<int64_t> CountKeys(EtcdClient& client, const std::string& prefix);

// Makes `txn` hold only while `key` does not exist (a missing key has
// version 0).
void RequireAbsent(etcdserverpb::TxnRequest& txn, const std::string& key);

// Makes `txn` hold only while `key` holds `value`.
void RequireValue(etcdserverpb::TxnRequest& txn, const std::string& key, std::string value);

// Makes `txn` hold only while `key` is bound to `lease`.
void RequireLease(etcdserverpb::TxnRequest& txn, const std::string& key, int64_t lease);

// Adds a put of `key` to `txn`'s success branch (bound to `lease`, if not 0).
void AddPut(etcdserverpb::TxnRequest& txn, std::string key, std::string value, int64_t lease = 0);

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_STORE_ETCD_INTERNAL_ETCD_CLIENT_H_
