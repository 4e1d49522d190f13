// authority/core/sidecar_keys.h: every key's sidecar keys row says what its
// record says, after every kind of change, and a store from before the rows
// gets them once, when an authority starts. On both stores.
#include "authority/core/sidecar_keys.h"

#include <catch2/catch.hpp>
#include <map>

#include "authority/fanout/sidecar_snapshot.h"
#include "common/time_util.h"
#include "tests/testing/authority_fixture.h"

namespace latchkey {
namespace {

using testing::AuthorityFixture;

std::map<std::string, std::string> AllRows(const KeyStore& store, Table table) {
  std::map<std::string, std::string> rows;
  for (std::string after;;) {
    absl::StatusOr<Page> page = store.Scan(table, "", after, 100);
    REQUIRE(page.ok());
    for (const Row& row : page->rows) rows[after = row.key] = row.value;
    if (!page->more) return rows;
  }
}

// The sidecar keys rows the key records call for.
std::map<std::string, std::string> RowsTheRecordsCallFor(const KeyStore& store) {
  std::map<std::string, std::string> want;
  for (const auto& [key_id, value] : AllRows(store, Table::kKeys)) {
    internal::KeyRecord rec;
    REQUIRE(rec.ParseFromString(value));
    want[key_id] = SidecarKeysRow(SidecarEntries(rec));
  }
  return want;
}

bool RowsMatchRecords(const KeyStore& store) {
  return AllRows(store, Table::kSidecarKeys) == RowsTheRecordsCallFor(store);
}

TEST_CASE("every change to a key leaves its sidecar keys row as its record says") {
  AuthorityFixture f;
  const v1::CreateProjectResponse p = f.CreateProject();
  const std::string project = p.project().project_id();
  CHECK(RowsMatchRecords(f.store()));
  const v1::GenerateApiKeyResponse api = *f.GenerateApiKey(project);
  const v1::GenerateSecretKeyResponse secret = *f.GenerateSecretKey(project);
  CHECK(RowsMatchRecords(f.store()));
  CHECK(AllRows(f.store(), Table::kSidecarKeys).size() == 3);

  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(api.key().key_id());
  REQUIRE(f.authority().RevokeApiKey(f.manager(), revoke).ok());
  CHECK(RowsMatchRecords(f.store()));

  v1::RotateApiKeyRequest rotate;  // the old value keeps a grace period
  rotate.set_key_id(p.legacy_key().key_id());
  *rotate.mutable_grace_period() = ToProto(absl::Hours(1));
  REQUIRE(f.authority().RotateApiKey(f.manager(), rotate).ok());
  CHECK(RowsMatchRecords(f.store()));
  v1::SnapshotChunk legacy;
  REQUIRE(
      legacy.ParseFromString(AllRows(f.store(), Table::kSidecarKeys).at(p.legacy_key().key_id())));
  CHECK(legacy.entries_size() == 2);  // the new value and the one in its grace period

  v1::DeleteSecretKeyRequest del;
  del.set_key_id(secret.key().key_id());
  del.set_confirm("DELETE");
  REQUIRE(f.authority().DeleteSecretKey(f.manager(), del).ok());
  CHECK(RowsMatchRecords(f.store()));
  CHECK(AllRows(f.store(), Table::kSidecarKeys).count(secret.key().key_id()) == 0);

  v1::SetApiAccessRequest access;  // a project's access is not a key's row
  access.set_project_id(project);
  access.set_enabled(false);
  REQUIRE(f.authority().SetApiAccess(f.manager(), access).ok());
  CHECK(RowsMatchRecords(f.store()));
}

TEST_CASE("a store from before the sidecar keys rows gets them once, when an authority starts") {
  AuthorityFixture f;
  const std::string project = f.CreateProject("a").project().project_id();
  const std::string other = f.CreateProject("b").project().project_id();
  for (int i = 0; i < 30; ++i) {  // 63 keys in all: two pages of the fill
    REQUIRE(f.GenerateSecretKey(project, "k" + std::to_string(i)).ok());
    REQUIRE(f.GenerateSecretKey(other, "k" + std::to_string(i)).ok());
  }
  const v1::GenerateApiKeyResponse api = *f.GenerateApiKey(project);
  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(api.key().key_id());
  REQUIRE(f.authority().RevokeApiKey(f.manager(), revoke).ok());
  REQUIRE(AllRows(f.store(), Table::kSidecarKeys).size() == 63);

  // As a release before the rows left the store: key records only.
  Mutation old;
  for (const auto& [key_id, row] : AllRows(f.store(), Table::kSidecarKeys)) {
    old.writes.push_back(Write{Table::kSidecarKeys, key_id, std::nullopt});
  }
  old.audit.set_action("test.forget_sidecar_keys");
  REQUIRE(f.store().Commit(std::move(old)).ok());
  REQUIRE(f.store().PutProgress(kSidecarKeysFilled, std::nullopt, kSidecarKeysDuty).ok());
  REQUIRE(AllRows(f.store(), Table::kSidecarKeys).empty());
  const uint64_t before = f.store().head_revision();

  std::unique_ptr<KeyAuthority> started = f.Replica();
  CHECK(RowsMatchRecords(f.store()));
  CHECK(AllRows(f.store(), Table::kSidecarKeys).size() == 63);
  CHECK(**f.store().GetProgress(kSidecarKeysFilled) == "1");
  // Through the mutation path, 50 keys at a time: two revisions, each with
  // its audit record and no entry for sidecars (nothing they hold changed).
  CHECK(f.store().head_revision() == before + 2);
  absl::StatusOr<std::vector<v1::KeyEvent>> events = f.store().EventsAfter(before, 10);
  REQUIRE(events.ok());
  REQUIRE(events->size() == 2);
  for (const v1::KeyEvent& e : *events) CHECK(e.upserts_size() == 0);
  absl::StatusOr<std::vector<v1::AuditEvent>> audit = f.store().AuditLog(before, 10);
  REQUIRE(audit.ok());
  REQUIRE(audit->size() == 2);
  for (const v1::AuditEvent& a : *audit) CHECK(a.action() == "store.sidecar_keys_filled");

  // A snapshot now holds every key, the revoked one as revoked.
  SidecarSnapshot snapshot(f.store());
  std::map<std::string, v1::KeyState> states;
  for (std::string chunk; *snapshot.Next(chunk);) {
    v1::SnapshotChunk c;
    REQUIRE(c.ParseFromString(chunk));
    for (const v1::KeyEntry& e : c.entries()) states[e.key_id()] = e.state();
  }
  CHECK(states.size() == 63);
  CHECK(states[api.key().key_id()] == v1::KEY_STATE_REVOKED);

  // Filled once: the next start writes nothing.
  const uint64_t filled = f.store().head_revision();
  std::unique_ptr<KeyAuthority> again = f.Replica();
  CHECK(f.store().head_revision() == filled);
}

}  // namespace
}  // namespace latchkey
