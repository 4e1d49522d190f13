// Notices the authority gives of its own accord (docs/design.md,
// "Webhooks"): a key about to expire, or an old value whose rotation grace
// is about to end (key.expiring), and a revoked key that sidecars still see
// (key.rejected_after_revocation). Each notice is a mutation with an audit
// record and nothing sidecars hold changed, so webhooks deliver it from the
// log like every other event, once, whichever replica noticed first: the
// key's record remembers what was announced, and the store's precondition
// on it lets only one replica's notice commit.
#include <optional>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "authority/core/internal/mutations.h"
#include "authority/core/key_authority.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

using internal::Audit;
using internal::KeyRecord;
using internal::Latchkey;

// How long before a key's expiry each notice comes, longest first. A grace
// period (7 days at most) gets the last one only: a first notice the moment
// it began would say nothing the rotation did not.
constexpr absl::Duration kNoticePeriods[] = {absl::Hours(24 * 7), absl::Hours(24)};
constexpr absl::Duration kGraceNoticePeriods[] = {absl::Hours(24)};
// A revoked key still being sent is announced at most this often.
constexpr absl::Duration kRejectionNoticeEvery = absl::Hours(1);

// "in under 7 days"
std::string Within(absl::Duration d) {
  return d == absl::Hours(24) ? "in under 1 day"
                              : StrCat("in under ", absl::ToInt64Hours(d) / 24, " days");
}

struct DueNotice {
  int64_t deadline_micros = 0;
  absl::Duration period;
  bool grace = false;  // a retired value's grace period, not the key's expiry
};

// The shortest of `periods` before `deadline` that has begun at `now`,
// unless it (or a shorter one) was given already.
template <size_t N>
std::optional<absl::Duration> Due(const KeyRecord& rec, int64_t deadline_micros, absl::Time now,
                                  const absl::Duration (&periods)[N]) {
  const absl::Time deadline = absl::FromUnixMicros(deadline_micros);
  if (now >= deadline) return std::nullopt;
  std::optional<absl::Duration> due;
  for (absl::Duration period : periods) {
    if (now >= deadline - period) due = period;
  }
  if (!due) return std::nullopt;
  for (const internal::ExpiryNotice& n : rec.expiry_notices()) {
    if (n.deadline_micros() == deadline_micros &&
        n.notice_micros() <= absl::ToInt64Microseconds(*due)) {
      return std::nullopt;
    }
  }
  return due;
}

// The next notice the key is due, if any.
std::optional<DueNotice> NextNotice(const KeyRecord& rec, absl::Time now) {
  const v1::Key& key = rec.key();
  if (key.state() != v1::KEY_STATE_ACTIVE) return std::nullopt;
  if (key.has_expire_time()) {
    const int64_t deadline = absl::ToUnixMicros(FromProto(key.expire_time()));
    if (std::optional<absl::Duration> d = Due(rec, deadline, now, kNoticePeriods)) {
      return DueNotice{deadline, *d, false};
    }
  }
  for (const internal::RetiredValue& r : rec.retired()) {
    if (r.valid_until_micros() == 0) continue;  // stopped at once
    if (std::optional<absl::Duration> d =
            Due(rec, r.valid_until_micros(), now, kGraceNoticePeriods)) {
      return DueNotice{r.valid_until_micros(), *d, true};
    }
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<int> KeyAuthority::AnnounceExpiring(absl::Time now) {
  int announced = 0;
  for (std::string after;;) {
    absl::StatusOr<Page> page = store_->Scan(Table::kKeys, "", after, 1000);
    if (!page.ok()) return page.status();
    for (const Row& row : page->rows) {
      after = row.key;
      KeyRecord seen;
      if (!seen.ParseFromString(row.value)) return absl::DataLossError("key record");
      // A key may owe two notices (its expiry and a grace period): one each.
      while (NextNotice(seen, now)) {
        absl::StatusOr<uint64_t> rev =
            Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
              absl::StatusOr<KeyRecord> rec = LoadKey(row.key, tx);
              if (absl::IsNotFound(rec.status())) return Built::kUnchanged;
              if (!rec.ok()) return rec.status();
              const std::optional<DueNotice> due = NextNotice(*rec, now);
              if (!due) return Built::kUnchanged;
              // Deadlines passed need no memory.
              auto* notices = rec->mutable_expiry_notices();
              for (int i = notices->size() - 1; i >= 0; --i) {
                if (absl::FromUnixMicros(notices->Get(i).deadline_micros()) <= now) {
                  notices->DeleteSubrange(i, 1);
                }
              }
              internal::ExpiryNotice* n = rec->add_expiry_notices();
              n->set_deadline_micros(due->deadline_micros);
              n->set_notice_micros(absl::ToInt64Microseconds(due->period));
              seen = *rec;
              // Nothing a sidecar holds changes: the event carries no entry.
              m.writes.push_back(internal::Put(Table::kKeys, row.key, *rec));
              const std::string when = FormatRfc3339(absl::FromUnixMicros(due->deadline_micros));
              m.audit = Audit(Latchkey(), "key.expiring", rec->key().project_id(), row.key,
                              due->grace ? StrCat("the value it had before rotation stops at ",
                                                  when, ", ", Within(due->period))
                                         : StrCat("expires at ", when, ", ", Within(due->period)),
                              now);
              return Built::kCommit;
            });
        if (!rev.ok()) return rev.status();
        if (*rev == 0) break;
        ++announced;
      }
    }
    if (!page->more) break;
  }
  return announced;
}

absl::Status KeyAuthority::AnnounceStillSent(const std::vector<UsageLedger::StillSent>& keys,
                                             absl::Time now) {
  for (const UsageLedger::StillSent& sent : keys) {
    // Most reports come within the hour of the last notice: no mutation.
    absl::StatusOr<KeyRecord> seen = LoadKey(sent.key_id);
    if (!seen.ok()) continue;  // deleted since
    if (now - absl::FromUnixMicros(seen->rejection_notice_micros()) < kRejectionNoticeEvery) {
      continue;
    }
    absl::StatusOr<uint64_t> rev =
        Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
          absl::StatusOr<KeyRecord> rec = LoadKey(sent.key_id, tx);
          if (absl::IsNotFound(rec.status())) return Built::kUnchanged;
          if (!rec.ok()) return rec.status();
          if (rec->key().state() != v1::KEY_STATE_REVOKED ||
              now - absl::FromUnixMicros(rec->rejection_notice_micros()) < kRejectionNoticeEvery) {
            return Built::kUnchanged;
          }
          rec->set_rejection_notice_micros(absl::ToUnixMicros(now));
          m.writes.push_back(internal::Put(Table::kKeys, sent.key_id, *rec));
          m.audit = Audit(
              Latchkey(), "key.rejected_after_revocation", rec->key().project_id(), sent.key_id,
              StrCat("sent ", sent.rejections, " times since its revocation",
                     sent.sidecars.empty()
                         ? std::string()
                         : StrCat(", by sidecars ", absl::StrJoin(sent.sidecars, ", "))),
              now);
          return Built::kCommit;
        });
    if (!rev.ok()) return rev.status();
  }
  return absl::OkStatus();
}

}  // namespace latchkey
