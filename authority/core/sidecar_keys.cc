#include "authority/core/sidecar_keys.h"

#include "absl/time/clock.h"
#include "authority/core/internal/mutations.h"
#include "authority/core/key_authority.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

// Keys per filling mutation: one row read (a precondition) and one written
// each, well inside etcd's 128 operations per transaction.
constexpr size_t kFillPage = 50;

}  // namespace

std::vector<v1::KeyEntry> SidecarEntries(const internal::KeyRecord& record) {
  const v1::Key& key = record.key();
  std::vector<v1::KeyEntry> entries;
  auto add = [&](const std::string& digest) -> v1::KeyEntry& {
    v1::KeyEntry& e = entries.emplace_back();
    e.set_digest(digest);
    e.set_key_id(key.key_id());
    e.set_project_id(key.project_id());
    e.set_kind(key.kind());
    e.set_state(key.state());
    if (key.has_expire_time()) *e.mutable_expire_time() = key.expire_time();
    return e;
  };
  add(record.digest());
  for (const internal::RetiredValue& old : record.retired()) {
    v1::KeyEntry& e = add(old.digest());
    if (old.valid_until_micros() == 0) {
      e.set_state(v1::KEY_STATE_REVOKED);
      continue;
    }
    // In its grace period: valid until the earlier of its end and the key's expiry.
    const absl::Time until = absl::FromUnixMicros(old.valid_until_micros());
    if (!key.has_expire_time() || until < FromProto(key.expire_time())) {
      *e.mutable_expire_time() = ToProto(until);
    }
  }
  return entries;
}

std::string SidecarKeysRow(const std::vector<v1::KeyEntry>& entries) {
  v1::SnapshotChunk row;
  for (const v1::KeyEntry& e : entries) *row.add_entries() = e;
  return row.SerializeAsString();
}

absl::Status KeyAuthority::FillSidecarKeys() {
  for (;;) {
    absl::StatusOr<std::optional<std::string>> filled = store_->GetProgress(kSidecarKeysFilled);
    if (!filled.ok()) return filled.status();
    if (filled->has_value()) return absl::OkStatus();
    absl::StatusOr<bool> lead = store_->replicas().Lead(kSidecarKeysDuty);
    if (!lead.ok()) return lead.status();
    if (!*lead) {  // another replica is filling them: wait for its mark
      absl::SleepFor(absl::Milliseconds(200));
      continue;
    }
    const absl::Time started = absl::Now();
    size_t rows = 0;
    bool still_leading = true;
    for (std::string after;;) {
      // Asking again keeps the duty (Replicas::Lead); lost, another replica
      // goes on and this one waits for its mark.
      absl::StatusOr<bool> leading = store_->replicas().Lead(kSidecarKeysDuty);
      if (!leading.ok()) return leading.status();
      if (!*leading) {
        still_leading = false;
        break;
      }
      absl::StatusOr<Page> page = store_->Scan(Table::kKeys, "", after, kFillPage);
      if (!page.ok()) return page.status();
      if (page->rows.empty()) break;
      // Each key read through the mutation, so that a change to it by
      // another replica meanwhile refuses this write and it is read again.
      size_t written = 0;
      absl::StatusOr<uint64_t> rev =
          Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
            for (const Row& row : page->rows) {
              absl::StatusOr<internal::KeyRecord> rec = LoadKey(row.key, tx);
              if (absl::IsNotFound(rec.status())) continue;  // deleted since
              if (!rec.ok()) return rec.status();
              m.writes.push_back(
                  Write{Table::kSidecarKeys, row.key, SidecarKeysRow(SidecarEntries(*rec))});
            }
            if (m.writes.empty()) return Built::kUnchanged;
            // Nothing a sidecar holds changes: the event carries no entry.
            m.audit = internal::Audit(internal::Latchkey(), "store.sidecar_keys_filled", "", "",
                                      StrCat(m.writes.size(), " keys from ", page->rows.front().key,
                                             " to ", page->rows.back().key),
                                      absl::Now());
            written = m.writes.size();
            return Built::kCommit;
          });
      if (!rev.ok()) return rev.status();
      rows += written;
      if (!page->more) break;
      after = page->rows.back().key;
    }
    if (!still_leading) continue;
    const absl::Status marked = store_->PutProgress(kSidecarKeysFilled, "1", kSidecarKeysDuty);
    if (absl::IsAborted(marked)) continue;  // the duty lapsed meanwhile: look again
    if (!marked.ok()) return marked;
    if (rows > 0) {
      spdlog::info("filled the sidecar keys of {} keys in {} (once, for a store from before them)",
                   rows, absl::FormatDuration(absl::Now() - started));
    }
    return absl::OkStatus();
  }
}

}  // namespace latchkey
