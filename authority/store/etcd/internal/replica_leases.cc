#include "authority/store/etcd/internal/replica_leases.h"

#include "absl/time/clock.h"
#include "common/key_format.h"
#include "common/strings.h"

namespace latchkey {

using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;

ReplicaLeases::ReplicaLeases(EtcdClient& client, const EtcdLayout& layout)
    : client_(client), layout_(layout), replica_key_(layout.Replica(GenerateId("rep_", 16))) {}

ReplicaLeases::~ReplicaLeases() {
  // The share leaves with the replica (a killed one's when its lease runs
  // out); its duties and usage writer are free for the next replica at once.
  {
    MutexLock lock(&share_mu_);
    if (share_.id != 0) client_.Revoke(share_.id).IgnoreError();
  }
  {
    MutexLock lock(&duty_mu_);
    if (duty_.id != 0) client_.Revoke(duty_.id).IgnoreError();
  }
  MutexLock lock(&usage_mu_);
  if (usage_.id != 0) client_.Revoke(usage_.id).IgnoreError();
}

absl::StatusOr<bool> ReplicaLeases::Renew(Lease& lease, absl::Duration ttl) {
  const absl::Time now = absl::Now();
  if (lease.id == 0 || now - lease.renewed < ttl / 3) return lease.id != 0;
  absl::Status renewed = client_.KeepAlive(lease.id);
  if (absl::IsNotFound(renewed)) {
    lease.id = 0;  // lapsed while etcd was out of reach: what it held went with it
    return false;
  }
  if (!renewed.ok()) return renewed;
  lease.renewed = now;
  return true;
}

absl::Status ReplicaLeases::Grant(Lease& lease, absl::Duration ttl) {
  const absl::Time now = absl::Now();
  absl::StatusOr<int64_t> id = client_.Grant(ttl);
  if (!id.ok()) return id.status();
  lease.id = *id;
  lease.renewed = now;
  return absl::OkStatus();
}

absl::StatusOr<bool> ReplicaLeases::Claim(const std::string& key, int64_t lease) {
  TxnRequest txn;
  RequireAbsent(txn, key);
  AddPut(txn, key, replica_key_, lease);
  txn.add_failure()->mutable_request_range()->set_key(key);
  TxnResponse resp;
  if (absl::Status s = client_.BlindTxn(txn, &resp); !s.ok()) return s;
  return resp.succeeded() ||
         (resp.responses_size() == 1 && resp.responses(0).response_range().kvs_size() == 1 &&
          resp.responses(0).response_range().kvs(0).lease() == lease);
}

absl::Status ReplicaLeases::Share(std::string_view summary) {
  MutexLock lock(&share_mu_);
  absl::StatusOr<bool> held = Renew(share_, kShareLease);
  if (!held.ok()) return held.status();
  if (!*held) {
    if (absl::Status s = Grant(share_, kShareLease); !s.ok()) return s;
    shared_.reset();
  }
  if (shared_ == summary) return absl::OkStatus();
  TxnRequest txn;
  AddPut(txn, replica_key_, std::string(summary), share_.id);
  TxnResponse resp;
  if (absl::Status s = client_.BlindTxn(txn, &resp); !s.ok()) {
    share_.id = 0;  // perhaps expired between renewal and put: start afresh
    return s;
  }
  shared_ = std::string(summary);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ReplicaLeases::SharedByOthers() const {
  const std::string prefix = layout_.Replicas();
  RangeRequest req;
  req.set_key(prefix);
  req.set_range_end(PrefixEnd(prefix));
  RangeResponse resp;
  if (absl::Status s = client_.Range(req, &resp); !s.ok()) return s;
  std::vector<std::string> others;
  for (const auto& kv : resp.kvs()) {
    if (kv.key() != replica_key_) others.push_back(kv.value());
  }
  return others;
}

// A duty is a key bound to the duty lease: taken when nobody holds it, kept
// while the lease is renewed, free for another replica once it runs out.
absl::StatusOr<bool> ReplicaLeases::Lead(std::string_view duty) {
  MutexLock lock(&duty_mu_);
  absl::StatusOr<bool> held = Renew(duty_, kDutyLease);
  if (!held.ok()) return held.status();
  if (!*held) {
    if (absl::Status s = Grant(duty_, kDutyLease); !s.ok()) return s;
  }
  return Claim(layout_.Duty(duty), duty_.id);
}

absl::StatusOr<int64_t> ReplicaLeases::DutyLease(std::string_view duty) {
  MutexLock lock(&duty_mu_);
  if (duty_.id == 0) return absl::AbortedError(StrCat("this replica does not hold ", duty));
  return duty_.id;
}

// Usage writers are numbered from 0. A replica takes the lowest number
// nobody holds: a writer whose replica died is free once that replica's
// lease runs out, and its rows become the next holder's own.
absl::StatusOr<std::string> ReplicaLeases::UsageWriter() {
  MutexLock lock(&usage_mu_);
  absl::StatusOr<bool> held = Renew(usage_, kUsageLease);
  if (!held.ok()) return held.status();
  if (!*held && !usage_writer_.empty()) {
    // Lapsed while etcd was out of reach: the writer may be another's now,
    // and what the caller knows of its rows is stale.
    const std::string lapsed = std::move(usage_writer_);
    usage_writer_.clear();
    return absl::AbortedError(StrCat("usage writer ", lapsed, " lapsed; ask again"));
  }
  if (*held) return usage_writer_;
  if (absl::Status s = Grant(usage_, kUsageLease); !s.ok()) return s;
  for (int n = 0; n < kMaxUsageWriters; ++n) {
    absl::StatusOr<bool> ours = Claim(layout_.UsageWriter(std::to_string(n)), usage_.id);
    if (!ours.ok()) {
      usage_.id = 0;  // granted, not yet holding anything: let it run out
      return ours.status();
    }
    if (*ours) {
      usage_writer_ = std::to_string(n);
      return usage_writer_;
    }
  }
  client_.Revoke(usage_.id).IgnoreError();
  usage_.id = 0;
  return absl::ResourceExhaustedError(
      StrCat("all ", kMaxUsageWriters, " usage writers are held by live replicas"));
}

absl::StatusOr<int64_t> ReplicaLeases::UsageWriterLease(std::string_view writer) {
  MutexLock lock(&usage_mu_);
  if (usage_.id == 0 || writer != usage_writer_) {
    return absl::AbortedError(StrCat("usage writer ", writer, " is not held by this replica"));
  }
  return usage_.id;
}

void ReplicaLeases::LostUsageWriter(int64_t lease) {
  MutexLock lock(&usage_mu_);
  if (usage_.id == lease) {
    usage_.id = 0;
    usage_writer_.clear();
  }
}

}  // namespace latchkey
