// What one replica of the etcd store holds in etcd through leases, so that
// it leaves with the replica (at once on a clean stop, when its lease runs
// out on a crash):
//   - its share, P replicas/<id>: the receipts others read (Replicas::Share);
//   - duties, P duties/<duty>, one lease for all (Replicas::Lead), which
//     progress rows written for a duty are checked against;
//   - a usage writer, P usage-writers/<n> (KeyStore::UsageWriter), which
//     usage rows are checked against.
// A lease is renewed when what it holds is asked for, not by a thread of its
// own: the authority asks for each well within its time.
#ifndef LATCHKEY_AUTHORITY_STORE_ETCD_INTERNAL_REPLICA_LEASES_H_
#define LATCHKEY_AUTHORITY_STORE_ETCD_INTERNAL_REPLICA_LEASES_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "authority/store/etcd/internal/etcd_client.h"
#include "authority/store/etcd/internal/layout.h"
#include "authority/store/replicas.h"
#include "common/mutex.h"

namespace latchkey {

class ReplicaLeases final : public Replicas {
 public:
  // `client` and `layout` outlive this.
  ReplicaLeases(EtcdClient& client, const EtcdLayout& layout);
  // Revokes every lease: what this replica held is free for others at once.
  ~ReplicaLeases() override;

  // This replica's key under P replicas/, also the value of what it holds.
  const std::string& replica_key() const { return replica_key_; }

  absl::Status Share(std::string_view summary) override;
  absl::StatusOr<std::vector<std::string>> SharedByOthers() const override;
  absl::StatusOr<bool> Lead(std::string_view duty) override;
  // The lease duties are held by; ABORTED naming `duty` when none is.
  absl::StatusOr<int64_t> DutyLease(std::string_view duty);

  // KeyStore::UsageWriter.
  absl::StatusOr<std::string> UsageWriter();
  // The lease `writer` is held by; ABORTED when this replica does not hold it.
  absl::StatusOr<int64_t> UsageWriterLease(std::string_view writer);
  // `writer`, held by `lease`, was taken over: forget it.
  void LostUsageWriter(int64_t lease);

 private:
  struct Lease {
    int64_t id = 0;  // 0: none
    absl::Time renewed;
  };
  static constexpr absl::Duration kShareLease = absl::Seconds(5);
  static constexpr absl::Duration kDutyLease = absl::Seconds(5);
  // Renewed at each UsageWriter call, which the authority makes every flush.
  static constexpr absl::Duration kUsageLease = absl::Seconds(60);
  static constexpr int kMaxUsageWriters = 1000;

  // Renews `lease` once a third of `ttl` has passed since it last was:
  // false (and `lease` none) when it had lapsed.
  absl::StatusOr<bool> Renew(Lease& lease, absl::Duration ttl);
  // A new lease of `ttl` into `lease`.
  absl::Status Grant(Lease& lease, absl::Duration ttl);
  // Takes `key` for `lease` when nobody holds it: true when it is bound to
  // `lease` afterwards (taken now, or by an earlier try whose answer was lost).
  absl::StatusOr<bool> Claim(const std::string& key, int64_t lease);

  EtcdClient& client_;
  const EtcdLayout& layout_;
  const std::string replica_key_;

  Mutex share_mu_;
  Lease share_ ABSL_GUARDED_BY(share_mu_);
  std::optional<std::string> shared_ ABSL_GUARDED_BY(share_mu_);  // what the row holds

  Mutex duty_mu_;
  Lease duty_ ABSL_GUARDED_BY(duty_mu_);

  Mutex usage_mu_;
  Lease usage_ ABSL_GUARDED_BY(usage_mu_);
  std::string usage_writer_ ABSL_GUARDED_BY(usage_mu_);
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_STORE_ETCD_INTERNAL_REPLICA_LEASES_H_
