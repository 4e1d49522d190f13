#include "authority/core/key_authority.h"

#include <algorithm>
#include <random>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "authority/core/internal/mutations.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace latchkey {

using internal::CheckKeyId;
using internal::CheckProjectId;
using internal::KeyRecord;
using internal::ProjectRecord;
using internal::Put;

namespace {

// The first key record with a sealed value (an API key), if any. Secret keys
// come first only as often as they outnumber API keys, and every project has
// a legacy API key, so the scan ends early.
absl::StatusOr<std::optional<KeyRecord>> FirstSealedKey(const KeyStore& store) {
  std::string after;
  for (;;) {
    absl::StatusOr<Page> page = store.Scan(Table::kKeys, "", after, 64);
    if (!page.ok()) return page.status();
    for (const Row& row : page->rows) {
      KeyRecord rec;
      if (!rec.ParseFromString(row.value)) return absl::DataLossError("key record");
      if (!rec.sealed_value().empty()) return rec;
    }
    if (!page->more) return std::nullopt;
    after = page->rows.back().key;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<KeyAuthority>> KeyAuthority::Create(KeyStore* store, Sealer sealer,
                                                                   KeyAuthorityOptions options) {
  if (options.max_active_keys < 1) {
    return absl::InvalidArgumentError("max active keys must be at least 1");
  }
  absl::StatusOr<std::optional<KeyRecord>> sealed = FirstSealedKey(*store);
  if (!sealed.ok()) return sealed.status();
  if (sealed->has_value() &&
      !sealer.Open((*sealed)->sealed_value(), (*sealed)->key().key_id()).ok()) {
    return absl::FailedPreconditionError(
        "the master key does not open the API key values in this store: it is not the key "
        "they were sealed with (restore the original master key file)");
  }
  absl::StatusOr<std::optional<std::string>> check =
      store->Get(Table::kGuards, internal::kMasterKeyCheck);
  if (!check.ok()) return check.status();
  if (check->has_value() && !sealer.Open(**check, internal::kMasterKeyCheck).ok()) {
    return absl::FailedPreconditionError(
        "the master key is not the one this store was created with (its check value does not "
        "open): give every replica the original master key file");
  }
  std::unique_ptr<KeyAuthority> authority(new KeyAuthority(store, std::move(sealer), options));
  if (absl::Status s = authority->FillSidecarKeys(); !s.ok()) return s;
  absl::Status loaded = authority->LoadPrincipals();
  if (!loaded.ok()) return loaded;
  return authority;
}

absl::StatusOr<bool> KeyAuthority::HoldsSealedValues(const KeyStore& store) {
  absl::StatusOr<std::optional<KeyRecord>> sealed = FirstSealedKey(store);
  if (!sealed.ok()) return sealed.status();
  return sealed->has_value();
}

namespace {

// The record in `row`, read for `id`; NOT_FOUND when there is none.
template <typename Record>
absl::StatusOr<Record> ParseRow(const absl::StatusOr<std::optional<std::string>>& row,
                                std::string_view what, std::string_view id) {
  if (!row.ok()) return row.status();
  if (!row->has_value()) return absl::NotFoundError(StrCat("no ", what, " ", id));
  Record record;
  if (!record.ParseFromString(**row)) return absl::DataLossError(StrCat(what, " record"));
  return record;
}

}  // namespace

absl::StatusOr<KeyRecord> KeyAuthority::LoadKey(std::string_view key_id) const {
  if (absl::Status valid = CheckKeyId(key_id); !valid.ok()) return valid;
  return ParseRow<KeyRecord>(store_->Get(Table::kKeys, key_id), "key", key_id);
}

absl::StatusOr<KeyRecord> KeyAuthority::LoadKey(std::string_view key_id, Transaction& tx) const {
  if (absl::Status valid = CheckKeyId(key_id); !valid.ok()) return valid;
  return ParseRow<KeyRecord>(tx.Get(Table::kKeys, key_id), "key", key_id);
}

absl::StatusOr<KeyRecord> KeyAuthority::LoadKeyFor(const Caller& caller, Permission p,
                                                   std::string_view key_id) const {
  absl::StatusOr<KeyRecord> rec = LoadKey(key_id);
  if (!rec.ok()) return rec.status();
  if (absl::Status s = AuthorizeIn(caller, p, rec->key().project_id(), "key", key_id); !s.ok()) {
    return s;
  }
  return rec;
}

absl::StatusOr<KeyRecord> KeyAuthority::LoadKeyFor(const Caller& caller, Permission p,
                                                   std::string_view key_id, Transaction& tx) const {
  absl::StatusOr<KeyRecord> rec = LoadKey(key_id, tx);
  if (!rec.ok()) return rec.status();
  if (absl::Status s = AuthorizeIn(caller, p, rec->key().project_id(), "key", key_id); !s.ok()) {
    return s;
  }
  return rec;
}

absl::StatusOr<ProjectRecord> KeyAuthority::LoadProject(std::string_view project_id) const {
  if (absl::Status valid = CheckProjectId(project_id); !valid.ok()) return valid;
  return ParseRow<ProjectRecord>(store_->Get(Table::kProjects, project_id), "project", project_id);
}

absl::StatusOr<ProjectRecord> KeyAuthority::LoadProject(std::string_view project_id,
                                                        Transaction& tx) const {
  if (absl::Status valid = CheckProjectId(project_id); !valid.ok()) return valid;
  return ParseRow<ProjectRecord>(tx.Get(Table::kProjects, project_id), "project", project_id);
}

void KeyAuthority::BackOff(int attempt) {
  if (attempt < 2) return;  // the first retry reads afresh at once
  const int64_t cap_micros = std::min<int64_t>(50'000, int64_t{500} << std::min(attempt, 7));
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<int64_t> jitter(cap_micros / 2, cap_micros);
  absl::SleepFor(absl::Microseconds(jitter(rng)));
}

absl::StatusOr<uint64_t> KeyAuthority::CommitAndRelease(Mutation m, ReleasableMutexLock& lock) {
  // Kept for Committed below: the store takes the mutation.
  const v1::KeyEvent event = m.event;
  const TableSet written = TableSet::Of(m.writes);
  absl::StatusOr<uint64_t> revision = store_->Append(std::move(m));
  lock.Release();
  if (!revision.ok()) return revision;
  if (absl::Status synced = store_->Sync(*revision); !synced.ok()) return synced;
  // The commit listener calls it too, when there is one (the server's);
  // without one this replica's own changes still count.
  Committed(event, written);  // what it asks of the server is the listener's to act on
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

absl::Status KeyAuthority::ReleaseActiveKey(const v1::Key& key, Transaction& tx,
                                            Mutation& m) const {
  absl::StatusOr<ProjectRecord> project = LoadProject(key.project_id(), tx);
  if (!project.ok()) return project.status();
  auto* keys = project->mutable_active_keys();
  keys->erase(
      std::remove_if(keys->begin(), keys->end(),
                     [&](const internal::ActiveKey& k) { return k.key_id() == key.key_id(); }),
      keys->end());
  m.writes.push_back(Put(Table::kProjects, key.project_id(), *project));
  return absl::OkStatus();
}

}  // namespace latchkey
