// Usage: what sidecars report about the keys they validate (summed by
// authority/core/usage_ledger.h), and the usage a key shows in the API.
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "authority/core/key_authority.h"
#include "common/log.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

constexpr int kTopRejectingSidecars = 5;  // in Key.top_rejecting_sidecars

}  // namespace

absl::StatusOr<v1::Key> KeyAuthority::WithUsage(v1::Key key) const {
  const bool revoked = key.state() == v1::KEY_STATE_REVOKED;
  absl::StatusOr<internal::KeyUsageRecord> usage = usage_.Read(key.key_id(), revoked);
  if (!usage.ok()) return usage.status();
  key.set_use_count(usage->count());
  if (usage->last_used_micros() != 0) {
    *key.mutable_last_used_time() = ToProto(absl::FromUnixMicros(usage->last_used_micros()));
  }
  key.set_rejected_count(usage->rejected_count());
  if (usage->last_rejected_micros() != 0) {
    *key.mutable_last_rejected_time() =
        ToProto(absl::FromUnixMicros(usage->last_rejected_micros()));
  }
  if (revoked) {
    key.set_rejected_since_revocation(usage->rejected_since_revocation());
    for (const internal::SidecarCount& c : usage->revoked_rejections()) {
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
    if (!IsValidTimestamp(u.last_used_time()) || !IsValidTimestamp(u.last_rejected_time())) {
      return absl::InvalidArgumentError(
          "usage times must be valid timestamps (years 1 to 9999, nanos 0 to 999999999)");
    }
  }
  usage_.Add(req, absl::Now());
  return absl::OkStatus();
}

absl::Status KeyAuthority::FlushUsage() {
  std::vector<UsageLedger::StillSent> still_sent;
  if (absl::Status flushed = usage_.Flush(&still_sent); !flushed.ok()) return flushed;
  // The usage is written; a notice that cannot commit now comes with the
  // next flush that sees the key sent again.
  if (absl::Status announced = AnnounceStillSent(still_sent, absl::Now()); !announced.ok()) {
    spdlog::warn("announcing revoked keys still sent: {}", announced.ToString());
  }
  return absl::OkStatus();
}

KeyAuthority::Consequences KeyAuthority::Committed(const v1::KeyEvent& event, TableSet written) {
  // A key is revoked when every value it has is: its current one and any
  // retired ones (a rotation without grace revokes only the old value).
  absl::flat_hash_map<std::string_view, bool> revoked;
  for (const v1::KeyEntry& e : event.upserts()) {
    auto [it, first] = revoked.try_emplace(e.key_id(), true);
    it->second = it->second && e.state() == v1::KEY_STATE_REVOKED;
  }
  for (const auto& [key_id, is_revoked] : revoked) {
    if (is_revoked) usage_.Revoked(key_id);
  }
  return Consequences{
      .principals = written.Has(Table::kPrincipals) || written.Has(Table::kRoleBindings),
      .webhooks = written.Has(Table::kWebhooks)};
}

}  // namespace latchkey
