// Usage: what sidecars report about the keys they validate, summed per key,
// and the usage a key shows in the API.
#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "authority/internal/mutations.h"
#include "authority/key_authority.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

using internal::CheckKeyId;
using internal::KeyRecord;
using internal::Put;

// A revoked key's usage names the sidecars that still receive it: the most
// frequent ones, so a report cannot grow the record without bound.
constexpr int kMaxSidecarCounts = 32;
constexpr int kTopRejectingSidecars = 5;  // in Key.top_rejecting_sidecars

// Adds one sidecar's report about one key to the key's summed usage. Times
// from the future are taken as now: a sidecar's clock cannot pin a key's
// last use ahead of the authority's.
void AddUsage(internal::KeyUsageRecord& usage, const v1::KeyUsage& u, const std::string& sidecar_id,
              bool revoked, absl::Time now) {
  auto micros = [now](const google::protobuf::Timestamp& t) {
    return absl::ToUnixMicros(std::min(FromProto(t), now));
  };
  if (u.count() > 0) {
    usage.set_count(usage.count() + u.count());
    usage.set_last_used_micros(std::max(usage.last_used_micros(), micros(u.last_used_time())));
  }
  if (u.rejected_count() == 0) return;
  const int64_t rejected_at = micros(u.last_rejected_time());
  usage.set_rejected_count(usage.rejected_count() + u.rejected_count());
  usage.set_last_rejected_micros(std::max(usage.last_rejected_micros(), rejected_at));
  if (!revoked) return;
  usage.set_rejected_since_revocation(usage.rejected_since_revocation() + u.rejected_count());
  auto* counts = usage.mutable_revoked_rejections();
  auto it = std::find_if(counts->begin(), counts->end(), [&](const internal::SidecarCount& c) {
    return c.sidecar_id() == sidecar_id;
  });
  internal::SidecarCount* c = it != counts->end() ? &*it : counts->Add();
  c->set_sidecar_id(sidecar_id);
  c->set_count(c->count() + u.rejected_count());
  c->set_last_micros(std::max(c->last_micros(), rejected_at));
  std::stable_sort(counts->begin(), counts->end(),
                   [](const internal::SidecarCount& a, const internal::SidecarCount& b) {
                     return a.count() > b.count();
                   });
  while (counts->size() > kMaxSidecarCounts) counts->RemoveLast();
}

// Within google.protobuf.Timestamp's range, so it converts and prints as
// JSON. An unset time (zero) is valid.
bool ValidTimestamp(const google::protobuf::Timestamp& t) {
  constexpr int64_t kMinSeconds = -62135596800;  // 0001-01-01T00:00:00Z
  constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31T23:59:59Z
  return t.seconds() >= kMinSeconds && t.seconds() <= kMaxSeconds && t.nanos() >= 0 &&
         t.nanos() <= 999999999;
}

}  // namespace

absl::StatusOr<v1::Key> KeyAuthority::WithUsage(v1::Key key) const {
  absl::StatusOr<std::optional<std::string>> row = store_->Get(Table::kUsage, key.key_id());
  if (!row.ok()) return row.status();
  if (!row->has_value()) return key;
  internal::KeyUsageRecord usage;
  if (!usage.ParseFromString(**row)) return absl::DataLossError("usage record");
  key.set_use_count(usage.count());
  if (usage.last_used_micros() != 0) {
    *key.mutable_last_used_time() = ToProto(absl::FromUnixMicros(usage.last_used_micros()));
  }
  key.set_rejected_count(usage.rejected_count());
  if (usage.last_rejected_micros() != 0) {
    *key.mutable_last_rejected_time() = ToProto(absl::FromUnixMicros(usage.last_rejected_micros()));
  }
  if (key.state() == v1::KEY_STATE_REVOKED) {
    key.set_rejected_since_revocation(usage.rejected_since_revocation());
    for (const internal::SidecarCount& c : usage.revoked_rejections()) {
      if (key.top_rejecting_sidecars_size() == kTopRejectingSidecars) break;
      v1::SidecarRejections* top = key.add_top_rejecting_sidecars();
      top->set_sidecar_id(c.sidecar_id());
      top->set_count(c.count());
      *top->mutable_last_time() = ToProto(absl::FromUnixMicros(c.last_micros()));
    }
  }
  return key;
}

absl::Status KeyAuthority::RecordUsage(const Caller& caller, const v1::ReportUsageRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kSync); !s.ok()) return s;
  for (const v1::KeyUsage& u : req.usage()) {
    if (!ValidTimestamp(u.last_used_time()) || !ValidTimestamp(u.last_rejected_time())) {
      return absl::InvalidArgumentError(
          "usage times must be valid timestamps (years 1 to 9999, nanos 0 to 999999999)");
    }
  }
  const absl::Time now = absl::Now();
  MutexLock lock(&usage_mu_);
  // Another replica may add to the same rows meanwhile: the write holds only
  // while every usage row is as read, and the report is added again
  // otherwise.
  for (int attempt = 1;; ++attempt) {
    absl::Status added = AddUsageReport(req, now);
    if (!absl::IsAborted(added) || attempt == kMaxMutationAttempts) return added;
    conflict_retries_.fetch_add(1, std::memory_order_relaxed);
    BackOff(attempt);
  }
}

absl::Status KeyAuthority::AddUsageReport(const v1::ReportUsageRequest& req, absl::Time now) {
  // Summed per key first: a report may name a key twice.
  struct Summed {
    internal::KeyUsageRecord usage;
    bool revoked = false;
  };
  absl::flat_hash_map<std::string, Summed> summed;
  std::vector<Precondition> reads;
  for (const v1::KeyUsage& u : req.usage()) {
    if (!CheckKeyId(u.key_id()).ok()) continue;
    auto [it, first] = summed.try_emplace(u.key_id());
    if (first) {
      absl::StatusOr<std::optional<std::string>> key_row = store_->Get(Table::kKeys, u.key_id());
      if (!key_row.ok()) return key_row.status();
      if (!key_row->has_value()) {  // deleted since it was used
        summed.erase(it);
        continue;
      }
      KeyRecord key;
      if (!key.ParseFromString(**key_row)) return absl::DataLossError("key record");
      it->second.revoked = key.key().state() == v1::KEY_STATE_REVOKED;
      absl::StatusOr<std::optional<std::string>> row = store_->Get(Table::kUsage, u.key_id());
      if (!row.ok()) return row.status();
      reads.push_back(Precondition{Table::kUsage, u.key_id(), *row});
      if (row->has_value() && !it->second.usage.ParseFromString(**row)) {
        return absl::DataLossError("usage record");
      }
    }
    AddUsage(it->second.usage, u, req.sidecar_id(), it->second.revoked, now);
  }
  if (summed.empty()) return absl::OkStatus();
  std::vector<Write> writes;
  for (const auto& [key_id, s] : summed) writes.push_back(Put(Table::kUsage, key_id, s.usage));
  if (absl::Status s = store_->WriteAdvisory(writes, std::move(reads)); !s.ok()) return s;
  // A DeleteSecretKey may have committed between reading a key above and the
  // write: its erase of the usage row then came first, and the write just
  // recreated it. Looking again after the write catches that; a deletion
  // after this look erases the row itself.
  std::vector<Write> orphans;
  for (const Write& w : writes) {
    absl::StatusOr<std::optional<std::string>> key_row = store_->Get(Table::kKeys, w.key);
    if (!key_row.ok()) return key_row.status();
    if (!key_row->has_value()) orphans.push_back(Write{Table::kUsage, w.key, std::nullopt});
  }
  if (orphans.empty()) return absl::OkStatus();
  return store_->WriteAdvisory(std::move(orphans));
}

}  // namespace latchkey
