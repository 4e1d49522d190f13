#include "authority/key_authority.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "authority/internal/requests.h"
#include "common/files.h"
#include "common/key_format.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

using internal::CheckId;
using internal::CheckName;
using internal::KeyRecord;
using internal::PrincipalRecord;
using internal::ProjectRecord;

constexpr char kDeleteConfirmation[] = "DELETE";

absl::Status CheckKeyId(std::string_view id) {
  return CheckId(id, kKeyIdPrefix, kKeyIdRandomChars, "key_id");
}
absl::Status CheckProjectId(std::string_view id) {
  return CheckId(id, kProjectIdPrefix, kProjectIdRandomChars, "project_id");
}

void SetLastAction(v1::Key& key, std::string_view action, const Caller& caller, absl::Time now) {
  v1::KeyAction* last = key.mutable_last_action();
  last->set_action(std::string(action));
  last->set_actor(caller.name);
  *last->mutable_time() = ToProto(now);
}

v1::AuditEvent Audit(const Caller& caller, std::string_view action, std::string_view project_id,
                     std::string_view key_id, std::string detail, absl::Time now) {
  v1::AuditEvent e;
  *e.mutable_time() = ToProto(now);
  e.set_actor(caller.name);
  e.set_action(std::string(action));
  e.set_project_id(std::string(project_id));
  e.set_key_id(std::string(key_id));
  e.set_detail(std::move(detail));
  return e;
}

Write Put(Table t, std::string key, const google::protobuf::Message& value) {
  return Write{t, std::move(key), value.SerializeAsString()};
}
Write Erase(Table t, std::string key) { return Write{t, std::move(key), std::nullopt}; }

std::string ProjectKeysRow(std::string_view project_id, std::string_view key_id) {
  return StrCat(project_id, key_id);
}

// Writes the record and tells sidecars every digest it now has.
void PutKey(Mutation& m, KeyRecord& record, uint64_t revision) {
  record.mutable_key()->set_revision(revision);
  m.writes.push_back(Put(Table::kKeys, record.key().key_id(), record));
  for (v1::KeyEntry& entry : SidecarEntries(record)) *m.event.add_upserts() = std::move(entry);
}

absl::Status CheckExpireTime(const google::protobuf::Timestamp& t, absl::Time now) {
  if (t.seconds() == 0 && t.nanos() == 0) return absl::OkStatus();  // unset
  if (t.nanos() < 0 || t.nanos() > 999999999 || t.seconds() < 0 || t.seconds() > 253402300799) {
    return absl::InvalidArgumentError("expire_time is not a valid timestamp");
  }
  if (FromProto(t) <= now) return absl::InvalidArgumentError("expire_time must be in the future");
  return absl::OkStatus();
}

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

absl::Status Authorize(const Caller& caller, Permission p) {
  const v1::Role r = caller.role;
  bool ok = false;
  switch (p) {
    case Permission::kRead:
      ok = r == v1::ROLE_ADMIN || r == v1::ROLE_MANAGER || r == v1::ROLE_MEMBER;
      break;
    case Permission::kWrite:
      ok = r == v1::ROLE_ADMIN || r == v1::ROLE_MANAGER;
      break;
    case Permission::kPrincipals:
      ok = r == v1::ROLE_ADMIN;
      break;
    case Permission::kSync:
      ok = r == v1::ROLE_ADMIN || r == v1::ROLE_SIDECAR;
      break;
  }
  if (ok) return absl::OkStatus();
  return absl::PermissionDeniedError(
      StrCat("principal ", caller.name, " (", v1::Role_Name(r), ") may not do this"));
}

std::vector<v1::KeyEntry> SidecarEntries(const KeyRecord& record) {
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

absl::StatusOr<std::unique_ptr<KeyAuthority>> KeyAuthority::Create(KeyStore* store, Sealer sealer,
                                                                   KeyAuthorityOptions options) {
  if (options.max_active_keys < 1) {
    return absl::InvalidArgumentError("max active keys must be at least 1");
  }
  std::unique_ptr<KeyAuthority> authority(new KeyAuthority(store, std::move(sealer), options));
  absl::Status loaded = authority->LoadPrincipals();
  if (!loaded.ok()) return loaded;
  return authority;
}

absl::Status KeyAuthority::LoadPrincipals() {
  std::string after;
  MutexLock lock(&principals_mu_);
  for (;;) {
    absl::StatusOr<Page> page = store_->Scan(Table::kPrincipals, "", after, 1000);
    if (!page.ok()) return page.status();
    for (const Row& row : page->rows) {
      PrincipalRecord rec;
      if (!rec.ParseFromString(row.value)) return absl::DataLossError("principal record");
      const v1::Principal& p = rec.principal();
      principals_[rec.token_digest()] = Caller{p.principal_id(), p.name(), p.role()};
    }
    if (!page->more) return absl::OkStatus();
    after = page->rows.back().key;
  }
}

absl::StatusOr<Caller> KeyAuthority::Authenticate(std::string_view token) const {
  if (!IsWellFormedToken(token)) {
    failed_auth_.fetch_add(1, std::memory_order_relaxed);
    return absl::UnauthenticatedError("missing or malformed token");
  }
  MutexLock lock(&principals_mu_);
  auto it = principals_.find(Sha256Bytes(token));
  if (it == principals_.end()) {
    failed_auth_.fetch_add(1, std::memory_order_relaxed);
    return absl::UnauthenticatedError("unknown token");
  }
  return it->second;
}

absl::StatusOr<bool> KeyAuthority::BootstrapAdmin(const std::string& token_path) {
  ReleasableMutexLock lock(&mu_);
  absl::StatusOr<Page> any = store_->Scan(Table::kPrincipals, "", "", 1);
  if (!any.ok()) return any.status();
  if (!any->rows.empty()) return false;
  // The file first: a crash before the commit leaves a token that opens
  // nothing, never an admin nobody can reach.
  const std::string token = GenerateToken();
  absl::Status written = WritePrivateFile(token_path, token + "\n");
  if (!written.ok()) return written;
  absl::StatusOr<PrincipalRecord> admin = AddPrincipal("latchkey", "admin", v1::ROLE_ADMIN, token);
  if (!admin.ok()) return admin.status();
  return true;
}

absl::StatusOr<KeyRecord> KeyAuthority::LoadKey(std::string_view key_id) const {
  absl::Status valid = CheckKeyId(key_id);
  if (!valid.ok()) return valid;
  absl::StatusOr<std::optional<std::string>> row = store_->Get(Table::kKeys, key_id);
  if (!row.ok()) return row.status();
  if (!row->has_value()) return absl::NotFoundError(StrCat("no key ", key_id));
  KeyRecord record;
  if (!record.ParseFromString(**row)) return absl::DataLossError("key record");
  return record;
}

absl::StatusOr<ProjectRecord> KeyAuthority::LoadProject(std::string_view project_id) const {
  absl::Status valid = CheckProjectId(project_id);
  if (!valid.ok()) return valid;
  absl::StatusOr<std::optional<std::string>> row = store_->Get(Table::kProjects, project_id);
  if (!row.ok()) return row.status();
  if (!row->has_value()) return absl::NotFoundError(StrCat("no project ", project_id));
  ProjectRecord record;
  if (!record.ParseFromString(**row)) return absl::DataLossError("project record");
  return record;
}

absl::StatusOr<uint64_t> KeyAuthority::CommitAndRelease(Mutation m, ReleasableMutexLock& lock) {
  absl::StatusOr<uint64_t> revision = store_->Append(std::move(m));
  lock.Release();
  if (!revision.ok()) return revision;
  if (absl::Status synced = store_->Sync(*revision); !synced.ok()) return synced;
  return revision;
}

int KeyAuthority::PruneActiveKeys(ProjectRecord& project, absl::Time now) {
  auto* keys = project.mutable_active_keys();
  const int64_t now_micros = absl::ToUnixMicros(now);
  keys->erase(std::remove_if(keys->begin(), keys->end(),
                             [&](const internal::ActiveKey& k) {
                               return k.expire_micros() != 0 && k.expire_micros() <= now_micros;
                             }),
              keys->end());
  return keys->size();
}

absl::Status KeyAuthority::ReleaseActiveKey(const v1::Key& key, Mutation& m) const {
  absl::StatusOr<ProjectRecord> project = LoadProject(key.project_id());
  if (!project.ok()) return project.status();
  auto* keys = project->mutable_active_keys();
  keys->erase(
      std::remove_if(keys->begin(), keys->end(),
                     [&](const internal::ActiveKey& k) { return k.key_id() == key.key_id(); }),
      keys->end());
  m.writes.push_back(Put(Table::kProjects, key.project_id(), *project));
  return absl::OkStatus();
}

absl::StatusOr<KeyAuthority::NewKey> KeyAuthority::MakeKey(
    const Caller& caller, std::string_view project_id, std::string_view name, v1::KeyKind kind,
    bool legacy, const google::protobuf::Timestamp* expire_time, absl::Time now,
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
  PutKey(m, made.record, store_->last_appended_revision() + 1);
  m.writes.push_back(Write{Table::kDigests, made.record.digest(), key.key_id()});
  m.writes.push_back(Write{Table::kProjectKeys, ProjectKeysRow(project_id, key.key_id()), ""});
  return made;
}

absl::StatusOr<v1::CreateProjectResponse> KeyAuthority::CreateProject(
    const Caller& caller, const v1::CreateProjectRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kWrite); !s.ok()) return s;
  if (absl::Status s = CheckName(req.name(), "name"); !s.ok()) return s;
  ReleasableMutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  ProjectRecord project;
  v1::Project& p = *project.mutable_project();
  p.set_project_id(GenerateProjectId());
  p.set_name(req.name());
  p.set_api_access_enabled(true);
  p.set_created_by(caller.name);
  *p.mutable_create_time() = ToProto(now);
  p.set_revision(store_->last_appended_revision() + 1);
  Mutation m;
  absl::StatusOr<NewKey> legacy =
      MakeKey(caller, p.project_id(), "Legacy API key", v1::API_KEY, true, nullptr, now, m);
  if (!legacy.ok()) return legacy.status();
  p.set_legacy_key_id(legacy->record.key().key_id());
  project.add_active_keys()->set_key_id(p.legacy_key_id());
  m.writes.push_back(Put(Table::kProjects, p.project_id(), project));
  m.audit = Audit(caller, "project.created", p.project_id(), p.legacy_key_id(),
                  StrCat("name=", p.name()), now);
  absl::StatusOr<uint64_t> rev = CommitAndRelease(std::move(m), lock);
  if (!rev.ok()) return rev.status();
  v1::CreateProjectResponse resp;
  *resp.mutable_project() = p;
  *resp.mutable_legacy_key() = legacy->record.key();
  resp.set_legacy_api_key(legacy->value);
  resp.set_revision(*rev);
  return resp;
}

absl::StatusOr<v1::Project> KeyAuthority::GetProject(const Caller& caller,
                                                     const v1::GetProjectRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kRead); !s.ok()) return s;
  absl::StatusOr<ProjectRecord> project = LoadProject(req.project_id());
  if (!project.ok()) return project.status();
  return project->project();
}

absl::StatusOr<v1::ListProjectsResponse> KeyAuthority::ListProjects(
    const Caller& caller, const v1::ListProjectsRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kRead); !s.ok()) return s;
  absl::StatusOr<int> size = internal::PageSize(req.page_size());
  if (!size.ok()) return size.status();
  absl::StatusOr<std::string> after = internal::DecodePageToken(req.page_token(), "projects");
  if (!after.ok()) return after.status();
  absl::StatusOr<Page> page = store_->Scan(Table::kProjects, "", *after, *size);
  if (!page.ok()) return page.status();
  v1::ListProjectsResponse resp;
  for (const Row& row : page->rows) {
    ProjectRecord rec;
    if (!rec.ParseFromString(row.value)) return absl::DataLossError("project record");
    *resp.add_projects() = rec.project();
  }
  if (page->more)
    resp.set_next_page_token(internal::EncodePageToken("projects", page->rows.back().key));
  return resp;
}

absl::StatusOr<v1::Project> KeyAuthority::SetApiAccess(const Caller& caller,
                                                       const v1::SetApiAccessRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kWrite); !s.ok()) return s;
  ReleasableMutexLock lock(&mu_);
  absl::StatusOr<ProjectRecord> project = LoadProject(req.project_id());
  if (!project.ok()) return project.status();
  v1::Project& p = *project->mutable_project();
  if (p.api_access_enabled() == req.enabled()) return p;  // already so: nothing changes
  p.set_api_access_enabled(req.enabled());
  p.set_revision(store_->last_appended_revision() + 1);
  Mutation m;
  m.writes.push_back(Put(Table::kProjects, p.project_id(), *project));
  v1::ProjectAccess* access = m.event.add_project_access();
  access->set_project_id(p.project_id());
  access->set_enabled(req.enabled());
  m.audit =
      Audit(caller, req.enabled() ? "project.api_access_enabled" : "project.api_access_disabled",
            p.project_id(), "", "", absl::Now());
  absl::StatusOr<uint64_t> rev = CommitAndRelease(std::move(m), lock);
  if (!rev.ok()) return rev.status();
  return p;
}

absl::StatusOr<KeyAuthority::NewKey> KeyAuthority::GenerateKey(
    const Caller& caller, std::string_view project_id, std::string_view name, v1::KeyKind kind,
    const google::protobuf::Timestamp& expire_time) {
  if (absl::Status s = Authorize(caller, Permission::kWrite); !s.ok()) return s;
  if (absl::Status s = CheckName(name, "name"); !s.ok()) return s;
  const absl::Time now = absl::Now();
  if (absl::Status s = CheckExpireTime(expire_time, now); !s.ok()) return s;
  ReleasableMutexLock lock(&mu_);
  absl::StatusOr<ProjectRecord> project = LoadProject(project_id);
  if (!project.ok()) return project.status();
  const int active = PruneActiveKeys(*project, now);
  if (active >= options_.max_active_keys) {
    return absl::ResourceExhaustedError(
        StrCat("project ", project_id, " already has ", active, " active keys; the limit is ",
               options_.max_active_keys, ". Revoke or delete a key first."));
  }
  Mutation m;
  absl::StatusOr<NewKey> made =
      MakeKey(caller, project_id, name, kind, false, &expire_time, now, m);
  if (!made.ok()) return made.status();
  internal::ActiveKey* slot = project->add_active_keys();
  slot->set_key_id(made->record.key().key_id());
  if (made->record.key().has_expire_time()) {
    slot->set_expire_micros(absl::ToUnixMicros(FromProto(made->record.key().expire_time())));
  }
  m.writes.push_back(Put(Table::kProjects, std::string(project_id), *project));
  m.audit = Audit(caller, "key.created", project_id, made->record.key().key_id(),
                  StrCat(KindName(kind), " name=", name), now);
  absl::StatusOr<uint64_t> rev = CommitAndRelease(std::move(m), lock);
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
  if (absl::Status s = Authorize(caller, Permission::kWrite); !s.ok()) return s;
  absl::StatusOr<KeyRecord> rec = LoadKey(req.key_id());
  if (!rec.ok()) return rec.status();
  if (rec->key().kind() != v1::API_KEY) {
    return absl::FailedPreconditionError(
        "secret keys are shown once, at creation; their value is not stored");
  }
  absl::StatusOr<std::string> value = sealer_.Open(rec->sealed_value(), rec->key().key_id());
  if (!value.ok()) return value.status();
  v1::GetApiKeyValueResponse resp;
  resp.set_api_key(*std::move(value));
  return resp;
}

absl::StatusOr<v1::Key> KeyAuthority::RevokeApiKey(const Caller& caller,
                                                   const v1::RevokeApiKeyRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kWrite); !s.ok()) return s;
  ReleasableMutexLock lock(&mu_);
  absl::StatusOr<KeyRecord> rec = LoadKey(req.key_id());
  if (!rec.ok()) return rec.status();
  v1::Key& key = *rec->mutable_key();
  if (key.kind() != v1::API_KEY) {
    return absl::FailedPreconditionError("secret keys are deleted, not revoked: DeleteSecretKey");
  }
  if (key.legacy()) {
    return absl::FailedPreconditionError(
        "the legacy API key cannot be revoked; rotate it with RotateApiKey");
  }
  if (key.state() == v1::KEY_STATE_REVOKED) return key;  // revoking twice changes nothing
  const absl::Time now = absl::Now();
  key.set_state(v1::KEY_STATE_REVOKED);
  SetLastAction(key, "revoked", caller, now);
  Mutation m;
  if (absl::Status s = ReleaseActiveKey(key, m); !s.ok()) return s;
  PutKey(m, *rec, store_->last_appended_revision() + 1);
  m.audit = Audit(caller, "key.revoked", key.project_id(), key.key_id(), "", now);
  absl::StatusOr<uint64_t> rev = CommitAndRelease(std::move(m), lock);
  if (!rev.ok()) return rev.status();
  return key;
}

absl::StatusOr<v1::RotateApiKeyResponse> KeyAuthority::RotateApiKey(
    const Caller& caller, const v1::RotateApiKeyRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kWrite); !s.ok()) return s;
  const absl::Duration grace = FromProto(req.grace_period());
  if (grace < absl::ZeroDuration() || grace > options_.max_grace_period) {
    return absl::InvalidArgumentError(StrCat("grace_period must be between 0 and ",
                                             absl::FormatDuration(options_.max_grace_period)));
  }
  ReleasableMutexLock lock(&mu_);
  absl::StatusOr<KeyRecord> rec = LoadKey(req.key_id());
  if (!rec.ok()) return rec.status();
  v1::Key& key = *rec->mutable_key();
  if (key.kind() != v1::API_KEY) {
    return absl::FailedPreconditionError("only API keys rotate; generate a new secret key");
  }
  if (key.state() == v1::KEY_STATE_REVOKED) {
    return absl::FailedPreconditionError("a revoked key cannot be rotated");
  }
  const absl::Time now = absl::Now();
  // A new value would not bring an expired key back: it stays expired.
  if (key.has_expire_time() && FromProto(key.expire_time()) <= now) {
    return absl::FailedPreconditionError("an expired key cannot be rotated; generate a new key");
  }
  Mutation m;
  internal::RetiredValue* old = rec->add_retired();
  old->set_digest(rec->digest());
  if (grace > absl::ZeroDuration()) old->set_valid_until_micros(absl::ToUnixMicros(now + grace));
  while (rec->retired_size() > options_.max_retired_values) {
    // The oldest value is forgotten: sidecars will answer UNKNOWN for it.
    m.writes.push_back(Erase(Table::kDigests, rec->retired(0).digest()));
    m.event.add_removed_digests(rec->retired(0).digest());
    rec->mutable_retired()->erase(rec->mutable_retired()->begin());
  }
  const std::string value = latchkey::GenerateKey(v1::API_KEY);
  absl::StatusOr<std::string> sealed = sealer_.Seal(value, key.key_id());
  if (!sealed.ok()) return sealed.status();
  rec->set_sealed_value(*std::move(sealed));
  rec->set_digest(Sha256Bytes(value));
  key.set_hint(KeyHint(value));
  SetLastAction(key, "rotated", caller, now);
  PutKey(m, *rec, store_->last_appended_revision() + 1);
  m.writes.push_back(Write{Table::kDigests, rec->digest(), key.key_id()});
  m.audit = Audit(caller, "key.rotated", key.project_id(), key.key_id(),
                  StrCat("grace_period=", absl::FormatDuration(grace)), now);
  absl::StatusOr<uint64_t> rev = CommitAndRelease(std::move(m), lock);
  if (!rev.ok()) return rev.status();
  v1::RotateApiKeyResponse resp;
  *resp.mutable_key() = key;
  resp.set_api_key(value);
  *resp.mutable_previous_valid_until() = ToProto(now + grace);
  resp.set_revision(*rev);
  return resp;
}

absl::StatusOr<v1::DeleteSecretKeyResponse> KeyAuthority::DeleteSecretKey(
    const Caller& caller, const v1::DeleteSecretKeyRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kWrite); !s.ok()) return s;
  ReleasableMutexLock lock(&mu_);
  absl::StatusOr<KeyRecord> rec = LoadKey(req.key_id());
  if (!rec.ok()) return rec.status();
  const v1::Key& key = rec->key();
  if (key.kind() != v1::SECRET_KEY) {
    return absl::FailedPreconditionError("API keys are revoked, not deleted: RevokeApiKey");
  }
  // After the id checks: an unknown or API-key id says so whatever `confirm`
  // holds, and only a real secret key asks for the word.
  if (req.confirm() != kDeleteConfirmation) {
    return absl::InvalidArgumentError("deleting a secret key needs confirm: \"DELETE\"");
  }
  Mutation m;
  if (absl::Status s = ReleaseActiveKey(key, m); !s.ok()) return s;
  m.writes.push_back(Erase(Table::kKeys, key.key_id()));
  m.writes.push_back(Erase(Table::kProjectKeys, ProjectKeysRow(key.project_id(), key.key_id())));
  m.writes.push_back(Erase(Table::kDigests, rec->digest()));
  m.writes.push_back(Erase(Table::kUsage, key.key_id()));
  m.event.add_removed_digests(rec->digest());
  m.audit = Audit(caller, "key.deleted", key.project_id(), key.key_id(),
                  StrCat("secret key name=", key.name(), " hint=", key.hint()), absl::Now());
  absl::StatusOr<uint64_t> rev = CommitAndRelease(std::move(m), lock);
  if (!rev.ok()) return rev.status();
  v1::DeleteSecretKeyResponse resp;
  resp.set_revision(*rev);
  return resp;
}

absl::StatusOr<v1::Key> KeyAuthority::GetKey(const Caller& caller, const v1::GetKeyRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kRead); !s.ok()) return s;
  absl::StatusOr<KeyRecord> rec = LoadKey(req.key_id());
  if (!rec.ok()) return rec.status();
  return WithUsage(rec->key());
}

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
  const absl::Time now = absl::Now();
  MutexLock lock(&usage_mu_);
  std::vector<Write> writes;
  for (const v1::KeyUsage& u : req.usage()) {
    if (!CheckKeyId(u.key_id()).ok()) continue;
    absl::StatusOr<std::optional<std::string>> key_row = store_->Get(Table::kKeys, u.key_id());
    if (!key_row.ok()) return key_row.status();
    if (!key_row->has_value()) continue;  // deleted since it was used
    KeyRecord key;
    if (!key.ParseFromString(**key_row)) return absl::DataLossError("key record");
    absl::StatusOr<std::optional<std::string>> row = store_->Get(Table::kUsage, u.key_id());
    if (!row.ok()) return row.status();
    internal::KeyUsageRecord usage;
    if (row->has_value() && !usage.ParseFromString(**row)) {
      return absl::DataLossError("usage record");
    }
    AddUsage(usage, u, req.sidecar_id(), key.key().state() == v1::KEY_STATE_REVOKED, now);
    writes.push_back(Put(Table::kUsage, u.key_id(), usage));
  }
  if (writes.empty()) return absl::OkStatus();
  return store_->WriteAdvisory(std::move(writes));
}

absl::StatusOr<v1::ListKeysResponse> KeyAuthority::ListKeys(const Caller& caller,
                                                            const v1::ListKeysRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kRead); !s.ok()) return s;
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
  if (absl::Status s = Authorize(caller, global ? Permission::kPrincipals : Permission::kRead);
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

absl::StatusOr<PrincipalRecord> KeyAuthority::AddPrincipal(const std::string& actor,
                                                           std::string_view name, v1::Role role,
                                                           const std::string& token) {
  const absl::Time now = absl::Now();
  PrincipalRecord rec;
  v1::Principal& p = *rec.mutable_principal();
  p.set_principal_id(GeneratePrincipalId());
  p.set_name(std::string(name));
  p.set_role(role);
  p.set_created_by(actor);
  *p.mutable_create_time() = ToProto(now);
  rec.set_token_digest(Sha256Bytes(token));
  Mutation m;
  m.writes.push_back(Put(Table::kPrincipals, p.principal_id(), rec));
  m.audit = Audit(Caller{"", actor, v1::ROLE_UNSPECIFIED}, "principal.created", "", "",
                  StrCat(p.principal_id(), " name=", name, " role=", v1::Role_Name(role)), now);
  absl::StatusOr<uint64_t> rev = store_->Commit(std::move(m));
  if (!rev.ok()) return rev.status();
  MutexLock lock(&principals_mu_);
  principals_[rec.token_digest()] = Caller{p.principal_id(), p.name(), p.role()};
  return rec;
}

absl::StatusOr<v1::CreatePrincipalResponse> KeyAuthority::CreatePrincipal(
    const Caller& caller, const v1::CreatePrincipalRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kPrincipals); !s.ok()) return s;
  if (absl::Status s = CheckName(req.name(), "name"); !s.ok()) return s;
  if (req.role() == v1::ROLE_UNSPECIFIED || !v1::Role_IsValid(req.role())) {
    return absl::InvalidArgumentError("role must be ADMIN, MANAGER, MEMBER or SIDECAR");
  }
  ReleasableMutexLock lock(&mu_);
  const std::string token = GenerateToken();
  absl::StatusOr<PrincipalRecord> rec = AddPrincipal(caller.name, req.name(), req.role(), token);
  if (!rec.ok()) return rec.status();
  v1::CreatePrincipalResponse resp;
  *resp.mutable_principal() = rec->principal();
  resp.set_token(token);
  return resp;
}

absl::StatusOr<v1::ListPrincipalsResponse> KeyAuthority::ListPrincipals(
    const Caller& caller, const v1::ListPrincipalsRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kPrincipals); !s.ok()) return s;
  absl::StatusOr<int> size = internal::PageSize(req.page_size());
  if (!size.ok()) return size.status();
  absl::StatusOr<std::string> after = internal::DecodePageToken(req.page_token(), "principals");
  if (!after.ok()) return after.status();
  absl::StatusOr<Page> page = store_->Scan(Table::kPrincipals, "", *after, *size);
  if (!page.ok()) return page.status();
  v1::ListPrincipalsResponse resp;
  for (const Row& row : page->rows) {
    PrincipalRecord rec;
    if (!rec.ParseFromString(row.value)) return absl::DataLossError("principal record");
    *resp.add_principals() = rec.principal();
  }
  if (page->more) {
    resp.set_next_page_token(internal::EncodePageToken("principals", page->rows.back().key));
  }
  return resp;
}

absl::StatusOr<v1::Key> KeyAuthority::FindKey(const Caller& caller, const v1::FindKeyRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kWrite); !s.ok()) return s;
  if (ParseKey(req.value()) == v1::KEY_KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        "value is not a well-formed latchkey key (prefix, length, alphabet or checksum)");
  }
  const std::string digest = Sha256Bytes(req.value());
  const absl::Time now = absl::Now();
  // The lookup and its audit record under the mutation lock: the record names
  // the key as it was found.
  ReleasableMutexLock lock(&mu_);
  absl::StatusOr<std::optional<std::string>> row = store_->Get(Table::kDigests, digest);
  if (!row.ok()) return row.status();
  absl::StatusOr<KeyRecord> rec = absl::NotFoundError("");
  if (row->has_value()) rec = LoadKey(**row);
  if (!rec.ok() && !absl::IsNotFound(rec.status())) return rec.status();
  Mutation m;
  const std::string hint = StrCat("digest ", HexPrefix(digest, 8));
  if (!rec.ok()) {
    m.audit =
        Audit(caller, "key.lookup_missed", "", "", StrCat(hint, ": no key has this value"), now);
    absl::StatusOr<uint64_t> rev = CommitAndRelease(std::move(m), lock);
    if (!rev.ok()) return rev.status();
    return absl::NotFoundError("no key has this value (never issued, or a deleted secret key)");
  }
  v1::ValueMatch match;
  match.set_current(rec->digest() == digest);
  for (const internal::RetiredValue& old : rec->retired()) {
    if (old.digest() == digest && old.valid_until_micros() != 0) {
      *match.mutable_valid_until() = ToProto(absl::FromUnixMicros(old.valid_until_micros()));
    }
  }
  const v1::Key& key = rec->key();
  m.audit = Audit(caller, "key.found", key.project_id(), key.key_id(),
                  StrCat(hint, match.current() ? ": current value" : ": retired value"), now);
  absl::StatusOr<uint64_t> rev = CommitAndRelease(std::move(m), lock);
  if (!rev.ok()) return rev.status();
  absl::StatusOr<v1::Key> found = WithUsage(key);
  if (!found.ok()) return found.status();
  *found->mutable_value_match() = std::move(match);
  return found;
}

absl::StatusOr<v1::Principal> KeyAuthority::WhoAmI(const Caller& caller,
                                                   const v1::WhoAmIRequest& /*req*/) {
  absl::StatusOr<std::optional<std::string>> row =
      store_->Get(Table::kPrincipals, caller.principal_id);
  if (!row.ok()) return row.status();
  // Deleted between authentication and this read: the token opens nothing now.
  if (!row->has_value()) return absl::UnauthenticatedError("unknown token");
  PrincipalRecord rec;
  if (!rec.ParseFromString(**row)) return absl::DataLossError("principal record");
  return rec.principal();
}

absl::StatusOr<v1::DeletePrincipalResponse> KeyAuthority::DeletePrincipal(
    const Caller& caller, const v1::DeletePrincipalRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kPrincipals); !s.ok()) return s;
  if (absl::Status s =
          CheckId(req.principal_id(), kPrincipalIdPrefix, kPrincipalIdRandomChars, "principal_id");
      !s.ok()) {
    return s;
  }
  ReleasableMutexLock lock(&mu_);
  absl::StatusOr<std::optional<std::string>> row =
      store_->Get(Table::kPrincipals, req.principal_id());
  if (!row.ok()) return row.status();
  if (!row->has_value()) return absl::NotFoundError("no principal " + req.principal_id());
  PrincipalRecord rec;
  if (!rec.ParseFromString(**row)) return absl::DataLossError("principal record");
  int admins = 0;
  {
    MutexLock plock(&principals_mu_);
    for (const auto& [digest, c] : principals_) admins += c.role == v1::ROLE_ADMIN ? 1 : 0;
  }
  if (rec.principal().role() == v1::ROLE_ADMIN && admins <= 1) {
    return absl::FailedPreconditionError("cannot delete the last ADMIN principal");
  }
  Mutation m;
  m.writes.push_back(Erase(Table::kPrincipals, req.principal_id()));
  m.audit = Audit(caller, "principal.deleted", "", "",
                  StrCat(req.principal_id(), " name=", rec.principal().name()), absl::Now());
  absl::StatusOr<uint64_t> rev = CommitAndRelease(std::move(m), lock);
  if (!rev.ok()) return rev.status();
  MutexLock plock(&principals_mu_);
  principals_.erase(rec.token_digest());
  v1::DeletePrincipalResponse resp;
  resp.set_revision(*rev);
  return resp;
}

}  // namespace latchkey
