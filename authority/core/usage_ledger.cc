#include "authority/core/usage_ledger.h"

#include <algorithm>
#include <vector>

#include "absl/hash/hash.h"
#include "authority/core/internal/mutations.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

// A revoked key's usage names the sidecars that still send it: the most
// frequent ones, so that reports cannot grow a row without bound.
constexpr int kMaxSidecarCounts = 32;
// Sidecars tallied per key between two flushes, before the list is cut.
constexpr size_t kMaxPendingSidecars = 2 * kMaxSidecarCounts;

// Adds `count` rejections by `sidecar_id`, the last at `last_micros`, to a
// row's list; keeps it sorted by count, most first, and cut to size.
void AddSidecarCount(internal::KeyUsageRecord& into, const std::string& sidecar_id, uint64_t count,
                     int64_t last_micros) {
  auto* counts = into.mutable_revoked_rejections();
  auto it = std::find_if(counts->begin(), counts->end(), [&](const internal::SidecarCount& c) {
    return c.sidecar_id() == sidecar_id;
  });
  internal::SidecarCount* c = it != counts->end() ? &*it : counts->Add();
  c->set_sidecar_id(sidecar_id);
  c->set_count(c->count() + count);
  c->set_last_micros(std::max(c->last_micros(), last_micros));
}

void SortAndCut(internal::KeyUsageRecord& into) {
  auto* counts = into.mutable_revoked_rejections();
  std::stable_sort(counts->begin(), counts->end(),
                   [](const internal::SidecarCount& a, const internal::SidecarCount& b) {
                     return a.count() > b.count();
                   });
  while (counts->size() > kMaxSidecarCounts) counts->RemoveLast();
}

}  // namespace

void AddPending(PendingUsage& into, const PendingUsage& more) {
  into.count += more.count;
  into.last_used_micros = std::max(into.last_used_micros, more.last_used_micros);
  into.rejected_count += more.rejected_count;
  into.last_rejected_micros = std::max(into.last_rejected_micros, more.last_rejected_micros);
  into.rejected_before_revocation += more.rejected_before_revocation;
  into.revocation_seen = into.revocation_seen || more.revocation_seen;
  for (const auto& [sidecar, r] : more.rejected_by) {
    auto it = into.rejected_by.find(sidecar);
    if (it == into.rejected_by.end()) {
      if (into.rejected_by.size() == kMaxPendingSidecars) {
        // Full: the newcomer takes the place of the fewest, if it has more.
        auto fewest = std::min_element(
            into.rejected_by.begin(), into.rejected_by.end(),
            [](const auto& a, const auto& b) { return a.second.count < b.second.count; });
        if (fewest->second.count >= r.count) continue;
        into.rejected_by.erase(fewest);
      }
      it = into.rejected_by.emplace(sidecar, PendingUsage::Rejections{}).first;
    }
    it->second.count += r.count;
    it->second.last_micros = std::max(it->second.last_micros, r.last_micros);
  }
}

void AddToRecord(internal::KeyUsageRecord& into, const PendingUsage& more, bool revoked) {
  into.set_count(into.count() + more.count);
  into.set_last_used_micros(std::max(into.last_used_micros(), more.last_used_micros));
  into.set_rejected_count(into.rejected_count() + more.rejected_count);
  into.set_last_rejected_micros(std::max(into.last_rejected_micros(), more.last_rejected_micros));
  const uint64_t since = more.rejected_count - more.rejected_before_revocation;
  if (!revoked || since == 0) return;
  into.set_rejected_since_revocation(into.rejected_since_revocation() + since);
  for (const auto& [sidecar, r] : more.rejected_by) {
    AddSidecarCount(into, sidecar, r.count, r.last_micros);
  }
  SortAndCut(into);
}

void MergeRecords(internal::KeyUsageRecord& into, const internal::KeyUsageRecord& row) {
  into.set_count(into.count() + row.count());
  into.set_last_used_micros(std::max(into.last_used_micros(), row.last_used_micros()));
  into.set_rejected_count(into.rejected_count() + row.rejected_count());
  into.set_last_rejected_micros(std::max(into.last_rejected_micros(), row.last_rejected_micros()));
  into.set_rejected_since_revocation(into.rejected_since_revocation() +
                                     row.rejected_since_revocation());
  for (const internal::SidecarCount& c : row.revoked_rejections()) {
    AddSidecarCount(into, c.sidecar_id(), c.count(), c.last_micros());
  }
  SortAndCut(into);
}

UsageLedger::Shard& UsageLedger::ShardOf(std::string_view key_id) const {
  return shards_[absl::Hash<std::string_view>{}(key_id) % kShards];
}

void UsageLedger::Add(const v1::ReportUsageRequest& req, absl::Time now) {
  auto micros = [now](const google::protobuf::Timestamp& t) {
    return absl::ToUnixMicros(std::min(FromProto(t), now));
  };
  for (const v1::KeyUsage& u : req.usage()) {
    if (!internal::CheckKeyId(u.key_id()).ok()) continue;
    if (u.count() == 0 && u.rejected_count() == 0) continue;
    PendingUsage more;
    if (u.count() > 0) {
      more.count = u.count();
      more.last_used_micros = micros(u.last_used_time());
    }
    if (u.rejected_count() > 0) {
      more.rejected_count = u.rejected_count();
      more.last_rejected_micros = micros(u.last_rejected_time());
      more.rejected_by[req.sidecar_id()] = {u.rejected_count(), more.last_rejected_micros};
    }
    Shard& shard = ShardOf(u.key_id());
    MutexLock lock(&shard.mu);
    AddPending(shard.keys[u.key_id()], more);
  }
}

void UsageLedger::Revoked(std::string_view key_id) {
  Shard& shard = ShardOf(key_id);
  MutexLock lock(&shard.mu);
  PendingUsage& pending = shard.keys[std::string(key_id)];
  if (pending.revocation_seen) return;
  pending.revocation_seen = true;
  pending.rejected_before_revocation = pending.rejected_count;
  pending.rejected_by.clear();
}

absl::flat_hash_map<std::string, PendingUsage> UsageLedger::TakeAll() {
  absl::flat_hash_map<std::string, PendingUsage> taken;
  for (Shard& shard : shards_) {
    MutexLock lock(&shard.mu);
    for (auto& [key_id, pending] : shard.keys) taken.emplace(key_id, std::move(pending));
    shard.keys.clear();
  }
  return taken;
}

void UsageLedger::GiveBack(const absl::flat_hash_map<std::string, PendingUsage>& taken,
                           bool writer_lost) {
  for (const auto& [key_id, pending] : taken) {
    Shard& shard = ShardOf(key_id);
    MutexLock lock(&shard.mu);
    AddPending(shard.keys[key_id], pending);
  }
  flushing_.clear();
  if (writer_lost) {
    // What we knew of our rows may be another replica's now: read afresh.
    writer_.clear();
    totals_.clear();
  }
}

absl::StatusOr<internal::KeyUsageRecord> UsageLedger::OwnRow(const std::string& key_id,
                                                             const std::string& writer) {
  {
    MutexLock lock(&state_mu_);
    if (auto it = totals_.find(key_id); it != totals_.end()) return it->second;
  }
  absl::StatusOr<std::vector<UsageRow>> rows = store_->GetUsage(key_id);
  if (!rows.ok()) return rows.status();
  internal::KeyUsageRecord own;
  for (const UsageRow& row : *rows) {
    if (row.writer == writer && !own.ParseFromString(row.value)) {
      return absl::DataLossError("usage row of " + key_id);
    }
  }
  return own;
}

absl::Status UsageLedger::Flush(std::vector<StillSent>* still_sent) {
  MutexLock flushing(&flush_mu_);
  absl::StatusOr<std::string> writer = store_->UsageWriter();
  absl::flat_hash_map<std::string, PendingUsage> taken;
  {
    MutexLock lock(&state_mu_);
    if (!writer.ok()) {
      if (absl::IsAborted(writer.status())) GiveBack({}, /*writer_lost=*/true);
      return writer.status();
    }
    if (*writer != writer_) {
      writer_ = *writer;
      totals_.clear();
    }
    taken = TakeAll();
    flushing_ = taken;
  }
  if (taken.empty()) return absl::OkStatus();

  auto fail = [&](absl::Status why) {
    MutexLock lock(&state_mu_);
    GiveBack(taken, absl::IsAborted(why));
    return why;
  };
  std::vector<UsageRow> rows;
  // This writer's row of each key in `rows`, before and after this flush.
  std::vector<internal::KeyUsageRecord> before, written;
  // Keys are read as the latest append left them (on etcd from the local
  // copy, with no call: a flush reads one per key, twice).
  for (const auto& [key_id, pending] : taken) {
    if (pending.count == 0 && pending.rejected_count == 0) continue;  // Revoked alone
    absl::StatusOr<std::optional<std::string>> key_row = store_->GetLatest(Table::kKeys, key_id);
    if (!key_row.ok()) return fail(key_row.status());
    if (!key_row->has_value()) continue;  // deleted since: its usage goes with it
    internal::KeyRecord key;
    if (!key.ParseFromString(**key_row)) return fail(absl::DataLossError("key record"));
    absl::StatusOr<internal::KeyUsageRecord> own = OwnRow(key_id, *writer);
    if (!own.ok()) return fail(own.status());
    const bool revoked = key.key().state() == v1::KEY_STATE_REVOKED;
    before.push_back(*own);
    AddToRecord(*own, pending, revoked);
    if (const uint64_t since = pending.rejected_count - pending.rejected_before_revocation;
        revoked && since > 0 && still_sent != nullptr) {
      // The row's own ranking (AddToRecord keeps it sorted, most first).
      StillSent& s = still_sent->emplace_back(StillSent{key_id, since, {}});
      for (const internal::SidecarCount& c : own->revoked_rejections()) {
        if (s.sidecars.size() == StillSent::kMaxSidecars) break;
        s.sidecars.push_back(c.sidecar_id());
      }
    }
    rows.push_back(UsageRow{key_id, *writer, own->SerializeAsString()});
    written.push_back(*std::move(own));
  }
  // Nothing to write when every key taken was deleted or only revoked: no
  // store write (the embedded store would count an empty batch as one).
  {
    MutexLock landing(&landing_mu_);
    absl::Status put;
    if (!rows.empty()) {
      {
        MutexLock lock(&state_mu_);
        ++landings_;  // odd: rows may be in the store before totals_ holds them
      }
      put = store_->PutUsage(*writer, rows);
    }
    MutexLock lock(&state_mu_);
    if (!rows.empty()) ++landings_;
    if (!put.ok()) {
      if (!absl::IsAborted(put)) {
        // Some rows may have landed (etcd writes them in several
        // transactions): keep this writer's rows as they were, so that Read
        // skips the store's copy and the next flush writes the whole total
        // over it.
        for (size_t i = 0; i < rows.size(); ++i) totals_[rows[i].key_id] = std::move(before[i]);
      }
      GiveBack(taken, absl::IsAborted(put));
      return put;
    }
    for (size_t i = 0; i < rows.size(); ++i) totals_[rows[i].key_id] = std::move(written[i]);
    flushing_.clear();
  }
  // A key deleted after it was read above lost its rows before these
  // landed: take them away again. One deleted after this look erases them
  // itself.
  for (const UsageRow& row : rows) {
    absl::StatusOr<std::optional<std::string>> key_row =
        store_->GetLatest(Table::kKeys, row.key_id);
    if (!key_row.ok()) return key_row.status();
    if (key_row->has_value()) continue;
    if (absl::Status erased = store_->EraseUsage(row.key_id); !erased.ok()) return erased;
    MutexLock lock(&state_mu_);
    totals_.erase(row.key_id);
  }
  return absl::OkStatus();
}

UsageLedger::Unwritten UsageLedger::Look(const std::string& key_id) const {
  Unwritten seen;
  MutexLock lock(&state_mu_);
  seen.writer = writer_;
  seen.landings = landings_;
  if (auto it = totals_.find(key_id); it != totals_.end()) seen.own = it->second;
  if (auto it = flushing_.find(key_id); it != flushing_.end()) AddPending(seen.pending, it->second);
  Shard& shard = ShardOf(key_id);
  MutexLock shard_lock(&shard.mu);
  if (auto it = shard.keys.find(key_id); it != shard.keys.end()) {
    AddPending(seen.pending, it->second);
  }
  return seen;
}

absl::StatusOr<internal::KeyUsageRecord> UsageLedger::Combine(const std::string& key_id,
                                                              const Unwritten& seen,
                                                              bool revoked) const {
  absl::StatusOr<std::vector<UsageRow>> rows = store_->GetUsage(key_id);
  if (!rows.ok()) return rows.status();
  internal::KeyUsageRecord total;
  for (const UsageRow& row : *rows) {
    if (seen.own && row.writer == seen.writer) continue;  // ours as we wrote it: `own`
    internal::KeyUsageRecord parsed;
    if (!parsed.ParseFromString(row.value)) return absl::DataLossError("usage row of " + key_id);
    MergeRecords(total, parsed);
  }
  if (seen.own) MergeRecords(total, *seen.own);
  AddToRecord(total, seen.pending, revoked);
  return total;
}

absl::StatusOr<internal::KeyUsageRecord> UsageLedger::Read(std::string_view key_id,
                                                           bool revoked) const {
  const std::string id(key_id);
  Unwritten seen = Look(id);
  if (seen.own) {
    // This process keeps its own row of the key, so the store's copy of it
    // is not read: what memory holds (the row as written, what a flush took,
    // what came since) moves between its parts under one lock, so rows
    // landing meanwhile count once. Only other writers' rows come from the
    // store.
    absl::StatusOr<internal::KeyUsageRecord> total = Combine(id, seen, revoked);
    MutexLock lock(&state_mu_);
    // A new writer (the old one's lease lost) may have landed its first rows
    // of the key meanwhile, which the store read would count twice.
    if (!total.ok() || writer_ == seen.writer) return total;
  } else if (seen.landings % 2 == 0) {
    // This writer's row comes from the store: right unless a flush's rows
    // began landing between the look at memory and the store read, which
    // would count what it took twice.
    absl::StatusOr<internal::KeyUsageRecord> total = Combine(id, seen, revoked);
    MutexLock lock(&state_mu_);
    if (!total.ok() || landings_ == seen.landings) return total;
  }
  // Rows were landing: read again with none landing.
  MutexLock landing(&landing_mu_);
  return Combine(id, Look(id), revoked);
}

}  // namespace latchkey
