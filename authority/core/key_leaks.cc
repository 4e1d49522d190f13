// Values reported leaked, and what each project's leak policy does with them
// (docs/design.md, "Leak response").
#include <algorithm>

#include "absl/time/clock.h"
#include "authority/core/internal/mutations.h"
#include "authority/core/internal/requests.h"
#include "authority/core/key_authority.h"
#include "common/key_format.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

using internal::Audit;
using internal::KeyRecord;
using internal::LeakRecord;
using internal::ProjectRecord;
using internal::PutKey;
using internal::SetLastAction;

// Findings a leaked value remembers: a report sent again after this many
// other findings of the same value acts again, which is harmless.
constexpr int kMaxLeakFindings = 64;

std::string FindingOf(std::string_view url) { return Sha256Bytes(url).substr(0, 16); }

std::string_view LeakPolicyName(v1::LeakPolicy policy) {
  return policy == v1::LEAK_POLICY_REVOKE ? "revoke" : "notify";
}

}  // namespace

absl::StatusOr<v1::Project> KeyAuthority::SetLeakPolicy(const Caller& caller,
                                                        const v1::SetLeakPolicyRequest& req) {
  if (absl::Status s =
          AuthorizeIn(caller, Permission::kWrite, req.project_id(), "project", req.project_id());
      !s.ok()) {
    return s;
  }
  if (req.policy() != v1::LEAK_POLICY_NOTIFY && req.policy() != v1::LEAK_POLICY_REVOKE) {
    return absl::InvalidArgumentError("policy must be LEAK_POLICY_NOTIFY or LEAK_POLICY_REVOKE");
  }
  return ChangeProject(req.project_id(), [&](v1::Project& p, Mutation& m) -> absl::StatusOr<Built> {
    const v1::LeakPolicy before =
        p.leak_policy() == v1::LEAK_POLICY_UNSPECIFIED ? v1::LEAK_POLICY_NOTIFY : p.leak_policy();
    if (before == req.policy()) {
      p.set_leak_policy(before);  // answered as set, though an old project never stored it
      return Built::kUnchanged;
    }
    p.set_leak_policy(req.policy());
    m.audit = Audit(caller, "project.leak_policy_set", p.project_id(), "",
                    StrCat("policy=", LeakPolicyName(req.policy())), absl::Now());
    return Built::kCommit;
  });
}

absl::StatusOr<bool> KeyAuthority::ReportLeak(const Caller& reporter, const LeakFinding& finding) {
  // Only a well-formed value can be latchkey's; the rest need no lookup.
  if (ParseKey(finding.value) == v1::KEY_KIND_UNSPECIFIED) return false;
  // Checked before any lookup; a record holding them must parse back.
  for (const auto& [text, field] : {std::pair{&finding.url, "url"}, {&finding.source, "source"}}) {
    if (absl::Status s = internal::CheckText(*text, field, kMaxLeakText); !s.ok()) return s;
  }
  const std::string digest = Sha256Bytes(finding.value);
  const std::string& url = finding.url;
  const std::string fingerprint = FindingOf(url);
  const absl::Time now = absl::Now();
  bool issued = false;
  std::string deleted_key;  // a secret key the report deleted: its usage rows go too
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    issued = false;
    deleted_key.clear();
    absl::StatusOr<std::optional<std::string>> key_id = tx.Get(Table::kDigests, digest);
    if (!key_id.ok()) return key_id.status();
    absl::StatusOr<std::optional<std::string>> leak_row = tx.Get(Table::kLeaks, digest);
    if (!leak_row.ok()) return leak_row.status();
    LeakRecord leak;
    if (leak_row->has_value() && !leak.ParseFromString(**leak_row)) {
      return absl::DataLossError("leak record");
    }
    if (!key_id->has_value() && !leak_row->has_value()) return Built::kUnchanged;
    issued = true;
    const auto& seen = leak.findings();
    if (std::find(seen.begin(), seen.end(), fingerprint) != seen.end()) return Built::kUnchanged;

    absl::StatusOr<KeyRecord> rec = absl::NotFoundError("");
    if (key_id->has_value()) rec = LoadKey(**key_id, tx);
    if (!rec.ok() && !absl::IsNotFound(rec.status())) return rec.status();
    if (rec.ok()) {
      leak.set_key_id(rec->key().key_id());
      leak.set_project_id(rec->key().project_id());
    }
    leak.add_findings(fingerprint);
    if (leak.findings_size() > kMaxLeakFindings) leak.mutable_findings()->DeleteSubrange(0, 1);
    m.writes.push_back(Put(Table::kLeaks, digest, leak));
    std::string detail =
        StrCat("url=", url, " source=", finding.source, " digest ", HexPrefix(digest, 8), ": ");
    if (!rec.ok()) {
      // A secret key an earlier report deleted: nothing left to stop.
      m.audit = Audit(reporter, "key.leaked", leak.project_id(), leak.key_id(),
                      StrCat(detail, "the key was deleted before"), now);
      return Built::kCommit;
    }

    v1::Key& key = *rec->mutable_key();
    *key.mutable_leaked_time() = ToProto(now);
    key.set_leak_url(url);
    absl::StatusOr<ProjectRecord> project = LoadProject(key.project_id(), tx);
    if (!project.ok()) return project.status();
    const bool current = rec->digest() == digest;
    std::string outcome = current ? "current value" : "retired value";
    if (project->project().leak_policy() != v1::LEAK_POLICY_REVOKE) {
      SetLastAction(key, "leaked", reporter, now);
      outcome += "; recorded (leak policy notify)";
    } else if (!current) {
      // The key's current value is not the one seen: only the retired value
      // stops, when it still works (a grace period).
      for (internal::RetiredValue& old : *rec->mutable_retired()) {
        if (old.digest() != digest || old.valid_until_micros() == 0) continue;
        if (absl::FromUnixMicros(old.valid_until_micros()) > now) {
          outcome += "; its grace period ended";
        }
        old.set_valid_until_micros(0);
      }
      SetLastAction(key, "leaked", reporter, now);
    } else if (key.kind() == v1::SECRET_KEY) {
      if (absl::Status s = EraseSecretKey(*rec, tx, m); !s.ok()) return s;
      deleted_key = key.key_id();
      m.audit = Audit(reporter, "key.leaked", key.project_id(), key.key_id(),
                      StrCat(detail, outcome, "; secret key name=", key.name(),
                             " hint=", key.hint(), " deleted (leak policy revoke)"),
                      now);
      return Built::kCommit;
    } else if (key.state() == v1::KEY_STATE_REVOKED) {
      outcome += "; already revoked";
      SetLastAction(key, "leaked", reporter, now);
    } else if (key.legacy()) {
      // The legacy key cannot be revoked: it gets a new value nobody has
      // seen (managers read it with GetApiKeyValue), and the leaked one stops.
      absl::StatusOr<std::string> rotated = Rotate(*rec, absl::ZeroDuration(), reporter, now, m);
      if (!rotated.ok()) return rotated.status();
      outcome += "; rotated with no grace (leak policy revoke)";
    } else {
      if (absl::Status s = Revoke(*rec, reporter, now, tx, m); !s.ok()) return s;
      outcome += "; revoked (leak policy revoke)";
    }
    PutKey(m, *rec, tx.revision());
    m.audit =
        Audit(reporter, "key.leaked", key.project_id(), key.key_id(), StrCat(detail, outcome), now);
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  if (!deleted_key.empty()) {
    if (absl::Status erased = store_->EraseUsage(deleted_key); !erased.ok()) {
      spdlog::warn("usage of deleted key {} stays in the store: {}", deleted_key,
                   erased.ToString());
    }
  }
  return issued;
}

}  // namespace latchkey
