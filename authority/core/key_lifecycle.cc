// The key lifecycle: projects, API and secret keys, and the rules of
// docs/design.md "Product rules" that govern them.
#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
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
using internal::CheckExpireTime;
using internal::CheckName;
using internal::Erase;
using internal::KeyRecord;
using internal::ProjectKeysRow;
using internal::ProjectRecord;
using internal::Put;
using internal::PutKey;
using internal::SetLastAction;

// An active, unexpired key that was last used (or, never used, created)
// before `since`.
bool UnusedSince(const v1::Key& key, absl::Time since) {
  if (key.state() != v1::KEY_STATE_ACTIVE) return false;
  if (key.has_expire_time() && FromProto(key.expire_time()) <= absl::Now()) return false;
  const google::protobuf::Timestamp& last =
      key.has_last_used_time() ? key.last_used_time() : key.create_time();
  return FromProto(last) < since;
}

}  // namespace

absl::StatusOr<KeyAuthority::NewKey> KeyAuthority::MakeKey(
    const Caller& caller, std::string_view project_id, std::string_view name, v1::KeyKind kind,
    bool legacy, const google::protobuf::Timestamp* expire_time, absl::Time now, uint64_t revision,
    Mutation& m) const {
  NewKey made;
  made.value = latchkey::GenerateKey(kind);
  v1::Key& key = *made.record.mutable_key();
  key.set_key_id(GenerateKeyId());
  key.set_project_id(std::string(project_id));
  key.set_name(std::string(name));
  key.set_kind(kind);
  key.set_state(v1::KEY_STATE_ACTIVE);
  key.set_legacy(legacy);
  key.set_created_by(caller.name);
  key.set_created_by_id(caller.principal_id);
  *key.mutable_create_time() = ToProto(now);
  if (expire_time != nullptr && (expire_time->seconds() != 0 || expire_time->nanos() != 0)) {
    *key.mutable_expire_time() = *expire_time;
  }
  key.set_hint(KeyHint(made.value));
  SetLastAction(key, "created", caller, now);
  made.record.set_digest(Sha256Bytes(made.value));
  if (kind == v1::API_KEY) {
    absl::StatusOr<std::string> sealed = sealer_.Seal(made.value, key.key_id());
    if (!sealed.ok()) return sealed.status();
    made.record.set_sealed_value(*std::move(sealed));
  }
  PutKey(m, made.record, revision);
  m.writes.push_back(Write{Table::kDigests, made.record.digest(), key.key_id()});
  m.writes.push_back(Write{Table::kProjectKeys, ProjectKeysRow(project_id, key.key_id()), ""});
  return made;
}

absl::Status KeyAuthority::Revoke(KeyRecord& rec, const Caller& caller, absl::Time now,
                                  Transaction& tx, Mutation& m) const {
  v1::Key& key = *rec.mutable_key();
  key.set_state(v1::KEY_STATE_REVOKED);
  SetLastAction(key, "revoked", caller, now);
  return ReleaseActiveKey(key, tx, m);
}

absl::StatusOr<std::string> KeyAuthority::Rotate(KeyRecord& rec, absl::Duration grace,
                                                 const Caller& caller, absl::Time now,
                                                 Mutation& m) const {
  v1::Key& key = *rec.mutable_key();
  internal::RetiredValue* old = rec.add_retired();
  old->set_digest(rec.digest());
  if (grace > absl::ZeroDuration()) {
    old->set_valid_until_micros(absl::ToUnixMicros(now + grace));
  }
  while (rec.retired_size() > options_.max_retired_values) {
    // The oldest value out of its grace period (or given none) is
    // forgotten: sidecars will answer UNKNOWN for it. One still in its grace
    // period was promised to work until then and is never dropped early.
    auto& retired = *rec.mutable_retired();
    auto in_grace = [now](const internal::RetiredValue& r) {
      return r.valid_until_micros() != 0 && absl::FromUnixMicros(r.valid_until_micros()) > now;
    };
    auto forget = std::find_if_not(retired.begin(), retired.end(), in_grace);
    if (forget == retired.end()) {
      const int64_t first_end =
          std::min_element(retired.begin(), retired.end(), [](const auto& a, const auto& b) {
            return a.valid_until_micros() < b.valid_until_micros();
          })->valid_until_micros();
      return absl::ResourceExhaustedError(
          StrCat("key ", key.key_id(), " already has ", options_.max_retired_values,
                 " earlier values in their grace period (the first ends ",
                 absl::FormatTime(absl::FromUnixMicros(first_end)),
                 "); rotate with no grace period, or after that"));
    }
    m.writes.push_back(Erase(Table::kDigests, forget->digest()));
    m.event.add_removed_digests(forget->digest());
    retired.erase(forget);
  }
  std::string value = latchkey::GenerateKey(v1::API_KEY);
  absl::StatusOr<std::string> sealed = sealer_.Seal(value, key.key_id());
  if (!sealed.ok()) return sealed.status();
  rec.set_sealed_value(*std::move(sealed));
  rec.set_digest(Sha256Bytes(value));
  key.set_hint(KeyHint(value));
  SetLastAction(key, "rotated", caller, now);
  m.writes.push_back(Write{Table::kDigests, rec.digest(), key.key_id()});
  return value;
}

absl::Status KeyAuthority::EraseSecretKey(const KeyRecord& rec, Transaction& tx,
                                          Mutation& m) const {
  const v1::Key& key = rec.key();
  if (absl::Status s = ReleaseActiveKey(key, tx, m); !s.ok()) return s;
  m.writes.push_back(Erase(Table::kKeys, key.key_id()));
  m.writes.push_back(Erase(Table::kSidecarKeys, key.key_id()));
  m.writes.push_back(Erase(Table::kProjectKeys, ProjectKeysRow(key.project_id(), key.key_id())));
  m.writes.push_back(Erase(Table::kDigests, rec.digest()));
  m.event.add_removed_digests(rec.digest());
  return absl::OkStatus();
}

absl::StatusOr<v1::CreateProjectResponse> KeyAuthority::CreateProject(
    const Caller& caller, const v1::CreateProjectRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kWrite); !s.ok()) return s;
  if (absl::Status s = CheckName(req.name(), "name"); !s.ok()) return s;
  const absl::Time now = absl::Now();
  ProjectRecord project;
  NewKey legacy;
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    v1::Project& p = *project.mutable_project();
    p.set_project_id(GenerateProjectId());
    p.set_name(req.name());
    p.set_api_access_enabled(true);
    p.set_leak_policy(v1::LEAK_POLICY_NOTIFY);
    p.set_created_by(caller.name);
    *p.mutable_create_time() = ToProto(now);
    p.set_revision(tx.revision());
    absl::StatusOr<NewKey> made = MakeKey(caller, p.project_id(), "Legacy API key", v1::API_KEY,
                                          true, nullptr, now, tx.revision(), m);
    if (!made.ok()) return made.status();
    legacy = *std::move(made);
    p.set_legacy_key_id(legacy.record.key().key_id());
    project.add_active_keys()->set_key_id(p.legacy_key_id());
    m.writes.push_back(Put(Table::kProjects, p.project_id(), project));
    m.audit = Audit(caller, "project.created", p.project_id(), p.legacy_key_id(),
                    StrCat("name=", p.name()), now);
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  v1::CreateProjectResponse resp;
  *resp.mutable_project() = project.project();
  *resp.mutable_legacy_key() = legacy.record.key();
  resp.set_legacy_api_key(legacy.value);
  resp.set_revision(*rev);
  return resp;
}

absl::StatusOr<v1::Project> KeyAuthority::GetProject(const Caller& caller,
                                                     const v1::GetProjectRequest& req) {
  if (absl::Status s =
          AuthorizeIn(caller, Permission::kRead, req.project_id(), "project", req.project_id());
      !s.ok()) {
    return s;
  }
  absl::StatusOr<ProjectRecord> project = LoadProject(req.project_id());
  if (!project.ok()) return project.status();
  return project->project();
}

absl::StatusOr<v1::ListProjectsResponse> KeyAuthority::ListProjects(
    const Caller& caller, const v1::ListProjectsRequest& req) {
  if (absl::Status s = AuthorizeAnywhere(caller, Permission::kRead); !s.ok()) return s;
  absl::StatusOr<int> size = internal::PageSize(req.page_size());
  if (!size.ok()) return size.status();
  absl::StatusOr<std::string> after = internal::DecodePageToken(req.page_token(), "projects");
  if (!after.ok()) return after.status();
  // Only the projects the caller holds a role in: scanned on until the page
  // is full, and the page token names the last project returned, never one
  // the caller may not see.
  v1::ListProjectsResponse resp;
  std::string from = *after;
  for (;;) {
    absl::StatusOr<Page> page = store_->Scan(Table::kProjects, "", from, *size);
    if (!page.ok()) return page.status();
    for (const Row& row : page->rows) {
      from = row.key;
      if (!Grants(RoleIn(caller, row.key), Permission::kRead)) continue;
      ProjectRecord rec;
      if (!rec.ParseFromString(row.value)) return absl::DataLossError("project record");
      *resp.add_projects() = rec.project();
      if (resp.projects_size() == *size) {
        const bool last_row = &row == &page->rows.back();
        if (!last_row || page->more) {
          resp.set_next_page_token(internal::EncodePageToken("projects", row.key));
        }
        return resp;
      }
    }
    if (!page->more) return resp;
  }
}

absl::StatusOr<v1::Project> KeyAuthority::ChangeProject(
    std::string_view project_id,
    const std::function<absl::StatusOr<Built>(v1::Project&, Mutation&)>& change) {
  ProjectRecord project;
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    absl::StatusOr<ProjectRecord> loaded = LoadProject(project_id, tx);
    if (!loaded.ok()) return loaded.status();
    project = *std::move(loaded);
    v1::Project& p = *project.mutable_project();
    absl::StatusOr<Built> changed = change(p, m);
    if (!changed.ok() || *changed == Built::kUnchanged) return changed;
    p.set_revision(tx.revision());
    m.writes.push_back(Put(Table::kProjects, p.project_id(), project));
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  return project.project();
}

absl::StatusOr<v1::Project> KeyAuthority::SetApiAccess(const Caller& caller,
                                                       const v1::SetApiAccessRequest& req) {
  if (absl::Status s =
          AuthorizeIn(caller, Permission::kWrite, req.project_id(), "project", req.project_id());
      !s.ok()) {
    return s;
  }
  return ChangeProject(req.project_id(), [&](v1::Project& p, Mutation& m) -> absl::StatusOr<Built> {
    if (p.api_access_enabled() == req.enabled()) return Built::kUnchanged;
    p.set_api_access_enabled(req.enabled());
    v1::ProjectAccess* access = m.event.add_project_access();
    access->set_project_id(p.project_id());
    access->set_enabled(req.enabled());
    m.audit =
        Audit(caller, req.enabled() ? "project.api_access_enabled" : "project.api_access_disabled",
              p.project_id(), "", "", absl::Now());
    return Built::kCommit;
  });
}

absl::StatusOr<KeyAuthority::NewKey> KeyAuthority::GenerateKey(
    const Caller& caller, std::string_view project_id, std::string_view name, v1::KeyKind kind,
    const google::protobuf::Timestamp& expire_time) {
  if (absl::Status s = AuthorizeIn(caller, Permission::kWrite, project_id, "project", project_id);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckName(name, "name"); !s.ok()) return s;
  const absl::Time now = absl::Now();
  if (absl::Status s = CheckExpireTime(expire_time, now); !s.ok()) return s;
  NewKey made;
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    absl::StatusOr<ProjectRecord> project = LoadProject(project_id, tx);
    if (!project.ok()) return project.status();
    const int active = PruneActiveKeys(*project, now);
    if (active >= options_.max_active_keys) {
      return absl::ResourceExhaustedError(
          StrCat("project ", project_id, " already has ", active, " active keys; the limit is ",
                 options_.max_active_keys, ". Revoke or delete a key first."));
    }
    absl::StatusOr<NewKey> key =
        MakeKey(caller, project_id, name, kind, false, &expire_time, now, tx.revision(), m);
    if (!key.ok()) return key.status();
    made = *std::move(key);
    internal::ActiveKey* slot = project->add_active_keys();
    slot->set_key_id(made.record.key().key_id());
    if (made.record.key().has_expire_time()) {
      slot->set_expire_micros(absl::ToUnixMicros(FromProto(made.record.key().expire_time())));
    }
    m.writes.push_back(Put(Table::kProjects, std::string(project_id), *project));
    m.audit = Audit(caller, "key.created", project_id, made.record.key().key_id(),
                    StrCat(KindName(kind), " name=", name), now);
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  return made;
}

absl::StatusOr<v1::GenerateApiKeyResponse> KeyAuthority::GenerateApiKey(
    const Caller& caller, const v1::GenerateApiKeyRequest& req) {
  absl::StatusOr<NewKey> made =
      GenerateKey(caller, req.project_id(), req.name(), v1::API_KEY, req.expire_time());
  if (!made.ok()) return made.status();
  v1::GenerateApiKeyResponse resp;
  *resp.mutable_key() = made->record.key();
  resp.set_api_key(std::move(made->value));
  resp.set_revision(resp.key().revision());
  return resp;
}

absl::StatusOr<v1::GenerateSecretKeyResponse> KeyAuthority::GenerateSecretKey(
    const Caller& caller, const v1::GenerateSecretKeyRequest& req) {
  absl::StatusOr<NewKey> made =
      GenerateKey(caller, req.project_id(), req.name(), v1::SECRET_KEY, req.expire_time());
  if (!made.ok()) return made.status();
  v1::GenerateSecretKeyResponse resp;
  *resp.mutable_key() = made->record.key();
  resp.set_secret_key(std::move(made->value));
  resp.set_revision(resp.key().revision());
  return resp;
}

absl::StatusOr<v1::GetApiKeyValueResponse> KeyAuthority::GetApiKeyValue(
    const Caller& caller, const v1::GetApiKeyValueRequest& req) {
  if (absl::Status s = AuthorizeAnywhere(caller, Permission::kWrite); !s.ok()) return s;
  // Reading a value is audited: the value is opened and the read committed
  // (a revision that changes no key) before it is returned, so no one reads
  // a key without an audit line naming them.
  std::string value;
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    absl::StatusOr<KeyRecord> rec = LoadKeyFor(caller, Permission::kWrite, req.key_id(), tx);
    if (!rec.ok()) return rec.status();
    if (rec->key().kind() != v1::API_KEY) {
      return absl::FailedPreconditionError(
          "secret keys are shown once, at creation; their value is not stored");
    }
    absl::StatusOr<std::string> opened = sealer_.Open(rec->sealed_value(), rec->key().key_id());
    if (!opened.ok()) return opened.status();
    value = *std::move(opened);
    m.audit = Audit(caller, "key.value_read", rec->key().project_id(), rec->key().key_id(), "",
                    absl::Now());
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  v1::GetApiKeyValueResponse resp;
  resp.set_api_key(std::move(value));
  return resp;
}

absl::StatusOr<v1::Key> KeyAuthority::RevokeApiKey(const Caller& caller,
                                                   const v1::RevokeApiKeyRequest& req) {
  if (absl::Status s = AuthorizeAnywhere(caller, Permission::kWrite); !s.ok()) return s;
  KeyRecord rec;
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    absl::StatusOr<KeyRecord> loaded = LoadKeyFor(caller, Permission::kWrite, req.key_id(), tx);
    if (!loaded.ok()) return loaded.status();
    rec = *std::move(loaded);
    v1::Key& key = *rec.mutable_key();
    if (key.kind() != v1::API_KEY) {
      return absl::FailedPreconditionError("secret keys are deleted, not revoked: DeleteSecretKey");
    }
    if (key.legacy()) {
      return absl::FailedPreconditionError(
          "the legacy API key cannot be revoked; rotate it with RotateApiKey");
    }
    if (key.state() == v1::KEY_STATE_REVOKED) return Built::kUnchanged;
    const absl::Time now = absl::Now();
    if (absl::Status s = Revoke(rec, caller, now, tx, m); !s.ok()) return s;
    PutKey(m, rec, tx.revision());
    m.audit = Audit(caller, "key.revoked", key.project_id(), key.key_id(), "", now);
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  return rec.key();
}

absl::StatusOr<v1::RotateApiKeyResponse> KeyAuthority::RotateApiKey(
    const Caller& caller, const v1::RotateApiKeyRequest& req) {
  if (absl::Status s = AuthorizeAnywhere(caller, Permission::kWrite); !s.ok()) return s;
  const absl::Duration grace = FromProto(req.grace_period());
  if (grace < absl::ZeroDuration() || grace > options_.max_grace_period) {
    return absl::InvalidArgumentError(StrCat("grace_period must be between 0 and ",
                                             absl::FormatDuration(options_.max_grace_period)));
  }
  const absl::Time now = absl::Now();
  KeyRecord rec;
  std::string value;
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    absl::StatusOr<KeyRecord> loaded = LoadKeyFor(caller, Permission::kWrite, req.key_id(), tx);
    if (!loaded.ok()) return loaded.status();
    rec = *std::move(loaded);
    v1::Key& key = *rec.mutable_key();
    if (key.kind() != v1::API_KEY) {
      return absl::FailedPreconditionError("only API keys rotate; generate a new secret key");
    }
    if (key.state() == v1::KEY_STATE_REVOKED) {
      return absl::FailedPreconditionError("a revoked key cannot be rotated");
    }
    // A new value would not bring an expired key back: it stays expired.
    if (key.has_expire_time() && FromProto(key.expire_time()) <= now) {
      return absl::FailedPreconditionError("an expired key cannot be rotated; generate a new key");
    }
    absl::StatusOr<std::string> rotated = Rotate(rec, grace, caller, now, m);
    if (!rotated.ok()) return rotated.status();
    value = *std::move(rotated);
    PutKey(m, rec, tx.revision());
    m.audit = Audit(caller, "key.rotated", key.project_id(), key.key_id(),
                    StrCat("grace_period=", absl::FormatDuration(grace)), now);
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  v1::RotateApiKeyResponse resp;
  *resp.mutable_key() = rec.key();
  resp.set_api_key(value);
  *resp.mutable_previous_valid_until() = ToProto(now + grace);
  resp.set_revision(*rev);
  return resp;
}

absl::StatusOr<v1::DeleteSecretKeyResponse> KeyAuthority::DeleteSecretKey(
    const Caller& caller, const v1::DeleteSecretKeyRequest& req) {
  if (absl::Status s = AuthorizeAnywhere(caller, Permission::kWrite); !s.ok()) return s;
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    absl::StatusOr<KeyRecord> rec = LoadKeyFor(caller, Permission::kWrite, req.key_id(), tx);
    if (!rec.ok()) return rec.status();
    const v1::Key& key = rec->key();
    if (key.kind() != v1::SECRET_KEY) {
      return absl::FailedPreconditionError("API keys are revoked, not deleted: RevokeApiKey");
    }
    // After the id checks: an unknown or API-key id says so whatever `confirm`
    // holds, and only a real secret key asks for the word.
    if (req.confirm() != internal::kDeleteConfirmation) {
      return absl::InvalidArgumentError("deleting a secret key needs confirm: \"DELETE\"");
    }
    if (absl::Status s = EraseSecretKey(*rec, tx, m); !s.ok()) return s;
    m.audit = Audit(caller, "key.deleted", key.project_id(), key.key_id(),
                    StrCat("secret key name=", key.name(), " hint=", key.hint()), absl::Now());
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  // Usage is outside the revisions: its rows go once the key has. A failure
  // leaves rows nobody reads (key ids are never reused).
  if (absl::Status erased = store_->EraseUsage(req.key_id()); !erased.ok()) {
    spdlog::warn("usage of deleted key {} stays in the store: {}", req.key_id(), erased.ToString());
  }
  v1::DeleteSecretKeyResponse resp;
  resp.set_revision(*rev);
  return resp;
}

absl::StatusOr<v1::Key> KeyAuthority::GetKey(const Caller& caller, const v1::GetKeyRequest& req) {
  if (absl::Status s = AuthorizeAnywhere(caller, Permission::kRead); !s.ok()) return s;
  absl::StatusOr<KeyRecord> rec = LoadKeyFor(caller, Permission::kRead, req.key_id());
  if (!rec.ok()) return rec.status();
  return WithUsage(rec->key());
}

absl::StatusOr<v1::ListKeysResponse> KeyAuthority::ListKeys(const Caller& caller,
                                                            const v1::ListKeysRequest& req) {
  if (absl::Status s =
          AuthorizeIn(caller, Permission::kRead, req.project_id(), "project", req.project_id());
      !s.ok()) {
    return s;
  }
  absl::StatusOr<int> size = internal::PageSize(req.page_size());
  if (!size.ok()) return size.status();
  absl::StatusOr<ProjectRecord> project = LoadProject(req.project_id());
  if (!project.ok()) return project.status();
  const std::string scope = StrCat("keys:", req.project_id());
  absl::StatusOr<std::string> after = internal::DecodePageToken(req.page_token(), scope);
  if (!after.ok()) return after.status();
  std::optional<absl::Time> unused_since;
  if (req.has_unused_for()) {
    const absl::Duration d = FromProto(req.unused_for());
    if (d <= absl::ZeroDuration() || req.unused_for().seconds() > 100LL * 366 * 86400) {
      return absl::InvalidArgumentError("unused_for must be a positive duration of at most 100y");
    }
    unused_since = absl::Now() - d;
  }
  absl::StatusOr<Page> page = store_->Scan(Table::kProjectKeys, req.project_id(), *after, *size);
  if (!page.ok()) return page.status();
  v1::ListKeysResponse resp;
  for (const Row& row : page->rows) {
    absl::StatusOr<KeyRecord> rec = LoadKey(row.key.substr(req.project_id().size()));
    if (absl::IsNotFound(rec.status())) continue;  // deleted since the scan
    if (!rec.ok()) return rec.status();
    absl::StatusOr<v1::Key> key = WithUsage(rec->key());
    if (!key.ok()) return key.status();
    if (unused_since && !UnusedSince(*key, *unused_since)) continue;
    *resp.add_keys() = *std::move(key);
  }
  if (page->more) resp.set_next_page_token(internal::EncodePageToken(scope, page->rows.back().key));
  return resp;
}

absl::StatusOr<v1::ListAuditEventsResponse> KeyAuthority::ListAuditEvents(
    const Caller& caller, const v1::ListAuditEventsRequest& req) {
  const bool global = req.project_id().empty();
  if (absl::Status s = global ? Authorize(caller, Permission::kPrincipals)
                              : AuthorizeIn(caller, Permission::kRead, req.project_id(), "project",
                                            req.project_id());
      !s.ok()) {
    return s;
  }
  absl::StatusOr<int> size = internal::PageSize(req.page_size());
  if (!size.ok()) return size.status();
  if (!global) {
    absl::StatusOr<ProjectRecord> project = LoadProject(req.project_id());
    if (!project.ok()) return project.status();
  }
  const std::string scope = StrCat("audit:", req.project_id());
  absl::StatusOr<std::string> after = internal::DecodePageToken(req.page_token(), scope);
  if (!after.ok()) return after.status();
  uint64_t after_rev = req.after_revision();
  if (!after->empty() && after_rev != 0) {
    return absl::InvalidArgumentError("give page_token or after_revision, not both");
  }
  if (!after->empty() && !absl::SimpleAtoi(*after, &after_rev)) {
    return absl::InvalidArgumentError("page_token is not one this listing returned");
  }
  absl::StatusOr<std::vector<v1::AuditEvent>> events =
      store_->AuditEvents(req.project_id(), after_rev, *size + 1);
  if (!events.ok()) return events.status();
  v1::ListAuditEventsResponse resp;
  const bool more = events->size() > static_cast<size_t>(*size);
  if (more) events->pop_back();
  for (v1::AuditEvent& e : *events) *resp.add_events() = std::move(e);
  if (more) {
    resp.set_next_page_token(
        internal::EncodePageToken(scope, StrCat(resp.events().rbegin()->revision())));
  }
  return resp;
}

absl::StatusOr<v1::Key> KeyAuthority::FindKey(const Caller& caller, const v1::FindKeyRequest& req) {
  if (absl::Status s = AuthorizeAnywhere(caller, Permission::kWrite); !s.ok()) return s;
  if (ParseKey(req.value()) == v1::KEY_KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        "value is not a well-formed latchkey key (prefix, length, alphabet or checksum)");
  }
  const std::string digest = Sha256Bytes(req.value());
  const absl::Time now = absl::Now();
  // The lookup and its audit record in one mutation: the record names the
  // key as it was found, and a miss is audited too.
  std::optional<KeyRecord> found;
  absl::Status refused;
  v1::ValueMatch match;
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    // Built again after a conflict: nothing of an earlier attempt may remain.
    found.reset();
    refused = absl::OkStatus();
    match.Clear();
    absl::StatusOr<std::optional<std::string>> row = tx.Get(Table::kDigests, digest);
    if (!row.ok()) return row.status();
    absl::StatusOr<KeyRecord> rec = absl::NotFoundError("");
    if (row->has_value()) rec = LoadKey(**row, tx);
    if (!rec.ok() && !absl::IsNotFound(rec.status())) return rec.status();
    const std::string hint = StrCat("digest ", HexPrefix(digest, 8));
    if (!rec.ok()) {
      m.audit =
          Audit(caller, "key.lookup_missed", "", "", StrCat(hint, ": no key has this value"), now);
      return Built::kCommit;
    }
    match.set_current(rec->digest() == digest);
    for (const internal::RetiredValue& old : rec->retired()) {
      if (old.digest() == digest && old.valid_until_micros() != 0) {
        *match.mutable_valid_until() = ToProto(absl::FromUnixMicros(old.valid_until_micros()));
      }
    }
    const v1::Key& key = rec->key();
    // A key of a project the caller holds no role in is, to it, a miss.
    refused = AuthorizeIn(caller, Permission::kWrite, key.project_id(), "", "");
    if (!refused.ok()) {
      m.audit = Audit(caller, "key.lookup_refused", key.project_id(), key.key_id(),
                      StrCat(hint, ": not the caller's to find"), now);
      return Built::kCommit;
    }
    m.audit = Audit(caller, "key.found", key.project_id(), key.key_id(),
                    StrCat(hint, match.current() ? ": current value" : ": retired value"), now);
    found = *std::move(rec);
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  if (!refused.ok() && !absl::IsNotFound(refused)) return refused;
  if (!found) {
    return absl::NotFoundError("no key has this value (never issued, or a deleted secret key)");
  }
  absl::StatusOr<v1::Key> key = WithUsage(found->key());
  if (!key.ok()) return key.status();
  *key->mutable_value_match() = std::move(match);
  return key;
}

}  // namespace latchkey
