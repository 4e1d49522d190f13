// The product rules of docs/design.md, one group per rule, against the real core
// and a real RocksDB store.
#include "authority/core/key_authority.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "absl/time/clock.h"
#include "authority/store/rocksdb/rocksdb_store.h"
#include "common/key_format.h"
#include "common/mutex.h"
#include "common/time_util.h"
#include "tests/testing/authority_fixture.h"
#include "tests/testing/thread_checking_store.h"

namespace latchkey {
namespace {

using testing::AuthorityFixture;

absl::StatusOr<v1::Key> Revoke(AuthorityFixture& f, const std::string& key_id) {
  v1::RevokeApiKeyRequest req;
  req.set_key_id(key_id);
  return f.authority().RevokeApiKey(f.manager(), req);
}

absl::StatusOr<v1::DeleteSecretKeyResponse> Delete(AuthorityFixture& f, const std::string& key_id,
                                                   const std::string& confirm) {
  v1::DeleteSecretKeyRequest req;
  req.set_key_id(key_id);
  req.set_confirm(confirm);
  return f.authority().DeleteSecretKey(f.manager(), req);
}

absl::StatusOr<std::string> Value(AuthorityFixture& f, const Caller& who,
                                  const std::string& key_id) {
  v1::GetApiKeyValueRequest req;
  req.set_key_id(key_id);
  absl::StatusOr<v1::GetApiKeyValueResponse> resp = f.authority().GetApiKeyValue(who, req);
  if (!resp.ok()) return resp.status();
  return resp->api_key();
}

absl::StatusOr<v1::RotateApiKeyResponse> Rotate(AuthorityFixture& f, const std::string& key_id,
                                                absl::Duration grace = absl::ZeroDuration()) {
  v1::RotateApiKeyRequest req;
  req.set_key_id(key_id);
  *req.mutable_grace_period() = ToProto(grace);
  return f.authority().RotateApiKey(f.manager(), req);
}

// Rule 1 ---------------------------------------------------------------------

TEST_CASE("rule 1: API and secret keys are created, named and listed per project") {
  AuthorityFixture f;
  const v1::CreateProjectResponse a = f.CreateProject("A");
  const v1::CreateProjectResponse b = f.CreateProject("B");
  absl::StatusOr<v1::GenerateApiKeyResponse> api =
      f.GenerateApiKey(a.project().project_id(), "ios");
  absl::StatusOr<v1::GenerateSecretKeyResponse> secret =
      f.GenerateSecretKey(a.project().project_id(), "billing export");
  REQUIRE(api.ok());
  REQUIRE(secret.ok());
  REQUIRE(ParseKey(api->api_key()) == v1::API_KEY);
  REQUIRE(ParseKey(secret->secret_key()) == v1::SECRET_KEY);
  std::vector<v1::Key> keys = f.ListKeys(a.project().project_id());
  REQUIRE(keys.size() == 3);  // legacy + 2
  std::set<std::string> names;
  for (const v1::Key& k : keys) names.insert(k.name());
  REQUIRE(names == std::set<std::string>{"Legacy API key", "ios", "billing export"});
  REQUIRE(f.ListKeys(b.project().project_id()).size() == 1);
}

TEST_CASE("rule 1: names must be 1 to 100 characters and bad names change nothing") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const uint64_t head = f.store().head_revision();
  const std::string bad = GENERATE(std::string(""), std::string("   "), std::string(101, 'x'),
                                   std::string("two\nlines"),
                                   // Not UTF-8: the stored record would not parse back.
                                   std::string("caf\xc3"));
  REQUIRE(absl::IsInvalidArgument(f.GenerateApiKey(project, bad).status()));
  REQUIRE(absl::IsInvalidArgument(f.GenerateSecretKey(project, bad).status()));
  REQUIRE(f.store().head_revision() == head);
  REQUIRE(f.ListKeys(project).size() == 1);
  // 100 characters, multi-byte ones included, is fine.
  REQUIRE(f.GenerateApiKey(project, std::string(100, 'x')).ok());
  std::string hundred_e_acute;
  for (int i = 0; i < 100; ++i) hundred_e_acute += "\u00e9";
  REQUIRE(f.GenerateApiKey(project, hundred_e_acute).ok());
}

// Rule 2 ---------------------------------------------------------------------

TEST_CASE("rule 2: each key shows its creator and its last action after each mutation") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  v1::GenerateApiKeyResponse api = *f.GenerateApiKey(project);
  v1::Key key = f.GetKey(api.key().key_id());
  REQUIRE(key.created_by() == "maria");
  REQUIRE(key.create_time().seconds() > 0);
  REQUIRE(key.last_action().action() == "created");
  REQUIRE(key.last_action().actor() == "maria");

  Caller other{"prn_o", "olga", v1::ROLE_ADMIN};
  v1::RotateApiKeyRequest rot;
  rot.set_key_id(key.key_id());
  REQUIRE(f.authority().RotateApiKey(other, rot).ok());
  key = f.GetKey(key.key_id());
  REQUIRE(key.created_by() == "maria");
  REQUIRE(key.last_action().action() == "rotated");
  REQUIRE(key.last_action().actor() == "olga");

  REQUIRE(Revoke(f, key.key_id()).ok());
  key = f.GetKey(key.key_id());
  REQUIRE(key.last_action().action() == "revoked");
  REQUIRE(key.last_action().actor() == "maria");
  REQUIRE(key.last_action().time().seconds() >= key.create_time().seconds());
}

TEST_CASE("rule 2: the audit log lists every mutation of a project in order") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const std::string api = f.GenerateApiKey(project)->key().key_id();
  const std::string secret = f.GenerateSecretKey(project)->key().key_id();
  REQUIRE(Rotate(f, api).ok());
  REQUIRE(Revoke(f, api).ok());
  REQUIRE(Delete(f, secret, "DELETE").ok());
  v1::SetApiAccessRequest off;
  off.set_project_id(project);
  off.set_enabled(false);
  REQUIRE(f.authority().SetApiAccess(f.manager(), off).ok());

  std::vector<v1::AuditEvent> audit = f.Audit(project);
  std::vector<std::string> actions;
  for (const v1::AuditEvent& e : audit) actions.push_back(e.action());
  REQUIRE(actions == std::vector<std::string>{"project.created", "key.created", "key.created",
                                              "key.rotated", "key.revoked", "key.deleted",
                                              "project.api_access_disabled"});
  for (size_t i = 1; i < audit.size(); ++i) REQUIRE(audit[i].revision() > audit[i - 1].revision());
  REQUIRE(audit[5].key_id() == secret);  // the audit log remembers the deleted key
  for (const v1::AuditEvent& e : audit) REQUIRE(e.actor() == "maria");
}

TEST_CASE("rule 2: audit events, last actions and creators carry the principal id too") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const std::string api = f.GenerateApiKey(project)->key().key_id();
  Caller olga{"prn_olga", "olga", v1::ROLE_ADMIN};
  v1::RotateApiKeyRequest rot;
  rot.set_key_id(api);
  REQUIRE(f.authority().RotateApiKey(olga, rot).ok());

  const v1::Key key = f.GetKey(api);
  CHECK(key.created_by_id() == f.manager().principal_id);
  CHECK(key.last_action().actor() == "olga");
  CHECK(key.last_action().actor_id() == "prn_olga");
  const std::vector<v1::AuditEvent> audit = f.Audit(project);
  REQUIRE(audit.size() == 3);
  CHECK(audit[0].actor_id() == f.manager().principal_id);  // project.created
  CHECK(audit[1].actor_id() == f.manager().principal_id);  // key.created
  CHECK(audit[2].actor_id() == "prn_olga");                // key.rotated
}

TEST_CASE("rule 2: reading an API key's value is an audited action, a refused read is not") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const std::string api = f.GenerateApiKey(project)->key().key_id();
  const std::string secret = f.GenerateSecretKey(project)->key().key_id();
  const size_t before = f.Audit(project).size();

  v1::GetApiKeyValueRequest read;
  read.set_key_id(api);
  REQUIRE(f.authority().GetApiKeyValue(f.manager(), read).ok());
  std::vector<v1::AuditEvent> audit = f.Audit(project);
  REQUIRE(audit.size() == before + 1);
  CHECK(audit.back().action() == "key.value_read");
  CHECK(audit.back().key_id() == api);
  CHECK(audit.back().actor() == "maria");
  CHECK(audit.back().actor_id() == f.manager().principal_id);
  CHECK(audit.back().revision() == f.store().head_revision());
  CHECK(f.GetKey(api).last_action().action() == "created");  // a read changes no key

  read.set_key_id(secret);
  CHECK(absl::IsFailedPrecondition(f.authority().GetApiKeyValue(f.manager(), read).status()));
  read.set_key_id(api);
  CHECK(absl::IsPermissionDenied(f.authority().GetApiKeyValue(f.member(), read).status()));
  CHECK(f.Audit(project).size() == before + 1);
}

TEST_CASE("rule 2: audit pages follow each other with no gap or overlap") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  for (int i = 0; i < 9; ++i) REQUIRE(f.GenerateApiKey(project).ok());
  v1::ListAuditEventsRequest req;
  req.set_project_id(project);
  req.set_page_size(4);
  std::vector<uint64_t> revs;
  do {
    absl::StatusOr<v1::ListAuditEventsResponse> page =
        f.authority().ListAuditEvents(f.member(), req);
    REQUIRE(page.ok());
    for (const v1::AuditEvent& e : page->events()) revs.push_back(e.revision());
    req.set_page_token(page->next_page_token());
  } while (!req.page_token().empty());
  REQUIRE(revs.size() == 10);
  for (size_t i = 1; i < revs.size(); ++i) REQUIRE(revs[i] > revs[i - 1]);
}

// Rule 3 ---------------------------------------------------------------------

TEST_CASE("rule 3: a project is born with a legacy API key that cannot be revoked") {
  AuthorityFixture f;
  const v1::CreateProjectResponse created = f.CreateProject();
  REQUIRE(created.legacy_key().legacy());
  REQUIRE(created.legacy_key().kind() == v1::API_KEY);
  REQUIRE(created.project().legacy_key_id() == created.legacy_key().key_id());
  REQUIRE(ParseKey(created.legacy_api_key()) == v1::API_KEY);
  const uint64_t head = f.store().head_revision();
  absl::StatusOr<v1::Key> revoked = Revoke(f, created.legacy_key().key_id());
  REQUIRE(absl::IsFailedPrecondition(revoked.status()));
  REQUIRE(f.store().head_revision() == head);
  REQUIRE(f.GetKey(created.legacy_key().key_id()).state() == v1::KEY_STATE_ACTIVE);
}

TEST_CASE("rule 3: rotating the legacy key keeps its id and gives it a new value") {
  AuthorityFixture f;
  const v1::CreateProjectResponse created = f.CreateProject();
  absl::StatusOr<v1::RotateApiKeyResponse> rotated = Rotate(f, created.legacy_key().key_id());
  REQUIRE(rotated.ok());
  REQUIRE(rotated->key().key_id() == created.legacy_key().key_id());
  REQUIRE(rotated->key().legacy());
  REQUIRE(rotated->api_key() != created.legacy_api_key());
  REQUIRE(ParseKey(rotated->api_key()) == v1::API_KEY);
  REQUIRE(*Value(f, f.manager(), created.legacy_key().key_id()) == rotated->api_key());
  REQUIRE(rotated->key().hint() == KeyHint(rotated->api_key()));
}

// Rule 4 ---------------------------------------------------------------------

TEST_CASE("rule 4: a revoked API key stays listed as REVOKED and its value can still be copied") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  v1::GenerateApiKeyResponse api = *f.GenerateApiKey(project);
  absl::StatusOr<v1::Key> revoked = Revoke(f, api.key().key_id());
  REQUIRE(revoked.ok());
  REQUIRE(revoked->state() == v1::KEY_STATE_REVOKED);
  bool listed = false;
  for (const v1::Key& k : f.ListKeys(project)) {
    if (k.key_id() == api.key().key_id()) listed = k.state() == v1::KEY_STATE_REVOKED;
  }
  REQUIRE(listed);
  REQUIRE(*Value(f, f.manager(), api.key().key_id()) == api.api_key());
}

TEST_CASE("rule 4: revoking a revoked key returns it unchanged") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const std::string id = f.GenerateApiKey(project)->key().key_id();
  v1::Key first = *Revoke(f, id);
  const uint64_t head = f.store().head_revision();
  v1::Key second = *Revoke(f, id);
  REQUIRE(second.SerializeAsString() == first.SerializeAsString());
  REQUIRE(f.store().head_revision() == head);
}

TEST_CASE("rule 4: a revoked key cannot be rotated back to life") {
  AuthorityFixture f;
  const std::string id = f.GenerateApiKey(f.CreateProject().project().project_id())->key().key_id();
  REQUIRE(Revoke(f, id).ok());
  REQUIRE(absl::IsFailedPrecondition(Rotate(f, id).status()));
}

// Rule 5 ---------------------------------------------------------------------

TEST_CASE("rule 5: a secret key is shown once and no RPC returns it again") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  v1::GenerateSecretKeyResponse secret = *f.GenerateSecretKey(project);
  REQUIRE(ParseKey(secret.secret_key()) == v1::SECRET_KEY);
  REQUIRE(absl::IsFailedPrecondition(Value(f, f.admin(), secret.key().key_id()).status()));
  const std::string key_id = secret.key().key_id();
  REQUIRE(f.GetKey(key_id).DebugString().find(secret.secret_key()) == std::string::npos);
  for (const v1::Key& k : f.ListKeys(project)) {
    REQUIRE(k.DebugString().find(secret.secret_key()) == std::string::npos);
  }
  for (const v1::AuditEvent& e : f.Audit(project)) {
    REQUIRE(e.DebugString().find(secret.secret_key()) == std::string::npos);
  }
  // Nor does the store hold it, in any form but its digest.
  REQUIRE(f.StoredCopiesOf(secret.secret_key()).empty());
}

// Rule 6 ---------------------------------------------------------------------

TEST_CASE("rule 6: deleting a secret key needs confirm exactly DELETE") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const std::string id = f.GenerateSecretKey(project)->key().key_id();
  const uint64_t head = f.store().head_revision();
  const std::string wrong = GENERATE(std::string("delete"), std::string(" DELETE"), std::string(""),
                                     std::string("DELETE "), std::string("yes"));
  REQUIRE(absl::IsInvalidArgument(Delete(f, id, wrong).status()));
  REQUIRE(f.store().head_revision() == head);
  REQUIRE(f.GetKey(id).state() == v1::KEY_STATE_ACTIVE);
}

TEST_CASE(
    "rule 6: a deleted secret key is gone from every listing but the audit log remembers it") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const std::string id = f.GenerateSecretKey(project)->key().key_id();
  REQUIRE(Delete(f, id, "DELETE").ok());
  v1::GetKeyRequest get;
  get.set_key_id(id);
  REQUIRE(absl::IsNotFound(f.authority().GetKey(f.member(), get).status()));
  for (const v1::Key& k : f.ListKeys(project)) REQUIRE(k.key_id() != id);
  REQUIRE(f.Audit(project).back().key_id() == id);
  REQUIRE(absl::IsNotFound(Delete(f, id, "DELETE").status()));
}

// Rule 7 ---------------------------------------------------------------------

TEST_CASE("rule 6: an unknown or API-key id is reported before the DELETE confirmation") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const std::string api = f.GenerateApiKey(project)->key().key_id();
  for (const std::string confirm : {"", "delete", "DELETE"}) {
    INFO(confirm);
    REQUIRE(absl::IsNotFound(Delete(f, GenerateKeyId(), confirm).status()));
    REQUIRE(absl::IsFailedPrecondition(Delete(f, api, confirm).status()));
  }
  REQUIRE(f.ListKeys(project).size() == 2);
}

TEST_CASE("rule 7: the 51st active key is RESOURCE_EXHAUSTED and the 50 stay") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  for (int i = 1; i < 50; ++i) {  // + legacy = 50
    if (i % 2 == 0) {
      REQUIRE(f.GenerateApiKey(project, "api " + std::to_string(i)).ok());
    } else {
      REQUIRE(f.GenerateSecretKey(project, "secret " + std::to_string(i)).ok());
    }
  }
  const uint64_t head = f.store().head_revision();
  REQUIRE(absl::IsResourceExhausted(f.GenerateApiKey(project).status()));
  REQUIRE(absl::IsResourceExhausted(f.GenerateSecretKey(project).status()));
  REQUIRE(f.store().head_revision() == head);
  std::vector<v1::Key> keys = f.ListKeys(project);
  REQUIRE(keys.size() == 50);
  for (const v1::Key& k : keys) REQUIRE(k.state() == v1::KEY_STATE_ACTIVE);
  // Revoking one frees a slot.
  for (const v1::Key& k : keys) {
    if (k.kind() == v1::API_KEY && !k.legacy()) {
      REQUIRE(Revoke(f, k.key_id()).ok());
      break;
    }
  }
  REQUIRE(f.GenerateApiKey(project).ok());
}

TEST_CASE("rule 7: deleting a secret key or revoking an API key frees its slot") {
  KeyAuthorityOptions options;
  options.max_active_keys = 3;
  AuthorityFixture f(options);
  const std::string project = f.CreateProject().project().project_id();
  const std::string secret = f.GenerateSecretKey(project)->key().key_id();
  const std::string api = f.GenerateApiKey(project)->key().key_id();
  REQUIRE(absl::IsResourceExhausted(f.GenerateApiKey(project).status()));
  REQUIRE(Delete(f, secret, "DELETE").ok());
  REQUIRE(f.GenerateApiKey(project).ok());
  REQUIRE(absl::IsResourceExhausted(f.GenerateApiKey(project).status()));
  REQUIRE(Revoke(f, api).ok());
  REQUIRE(Revoke(f, api).ok());  // revoking twice frees nothing more
  REQUIRE(f.GenerateApiKey(project).ok());
  REQUIRE(absl::IsResourceExhausted(f.GenerateApiKey(project).status()));
}

TEST_CASE("rule 7: the limit is the --max-active-keys option") {
  KeyAuthorityOptions options;
  options.max_active_keys = 3;
  AuthorityFixture f(options);
  const std::string project = f.CreateProject().project().project_id();
  REQUIRE(f.GenerateApiKey(project).ok());
  REQUIRE(f.GenerateSecretKey(project).ok());
  REQUIRE(absl::IsResourceExhausted(f.GenerateApiKey(project).status()));
}

// Rule 8 ---------------------------------------------------------------------

TEST_CASE("rule 8: SetApiAccess flips the project and tells sidecars in an event") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  v1::SetApiAccessRequest req;
  req.set_project_id(project);
  req.set_enabled(false);
  absl::StatusOr<v1::Project> off = f.authority().SetApiAccess(f.manager(), req);
  REQUIRE(off.ok());
  REQUIRE_FALSE(off->api_access_enabled());
  v1::KeyEvent event = f.store().EventsAfter(f.store().head_revision() - 1, 1)->at(0);
  REQUIRE(event.project_access_size() == 1);
  REQUIRE(event.project_access(0).project_id() == project);
  REQUIRE_FALSE(event.project_access(0).enabled());
  // Setting it to what it is already changes nothing.
  const uint64_t head = f.store().head_revision();
  REQUIRE(f.authority().SetApiAccess(f.manager(), req).ok());
  REQUIRE(f.store().head_revision() == head);
  req.set_enabled(true);
  REQUIRE(f.authority().SetApiAccess(f.manager(), req)->api_access_enabled());
}

// Rule 9 ---------------------------------------------------------------------

TEST_CASE("rule 9: MEMBER can list and read metadata but never change keys or read values") {
  AuthorityFixture f;
  const v1::CreateProjectResponse created = f.CreateProject();
  const std::string project = created.project().project_id();
  const std::string secret = f.GenerateSecretKey(project)->key().key_id();
  const Caller& m = f.member();
  KeyAuthority& a = f.authority();
  REQUIRE(f.ListKeys(project).size() == 2);
  v1::GetProjectRequest gp;
  gp.set_project_id(project);
  REQUIRE(a.GetProject(m, gp).ok());

  const uint64_t head = f.store().head_revision();
  v1::GenerateApiKeyRequest gen;
  gen.set_project_id(project);
  gen.set_name("x");
  REQUIRE(absl::IsPermissionDenied(a.GenerateApiKey(m, gen).status()));
  v1::RevokeApiKeyRequest rev;
  rev.set_key_id(created.legacy_key().key_id());
  REQUIRE(absl::IsPermissionDenied(a.RevokeApiKey(m, rev).status()));
  v1::DeleteSecretKeyRequest del;
  del.set_key_id(secret);
  del.set_confirm("DELETE");
  REQUIRE(absl::IsPermissionDenied(a.DeleteSecretKey(m, del).status()));
  REQUIRE(absl::IsPermissionDenied(Value(f, m, created.legacy_key().key_id()).status()));
  v1::CreateProjectRequest cp;
  cp.set_name("x");
  REQUIRE(absl::IsPermissionDenied(a.CreateProject(m, cp).status()));
  REQUIRE(f.store().head_revision() == head);
}

TEST_CASE("rule 9: roles grant exactly their permissions") {
  using P = Permission;
  struct Case {
    v1::Role role;
    bool read, write, principals, sync;
  };
  const Case c = GENERATE(Case{v1::ROLE_ADMIN, true, true, true, true},
                          Case{v1::ROLE_MANAGER, true, true, false, false},
                          Case{v1::ROLE_MEMBER, true, false, false, false},
                          Case{v1::ROLE_SIDECAR, false, false, false, true},
                          Case{v1::ROLE_UNSPECIFIED, false, false, false, false});
  const Caller caller{"prn_x", "x", c.role};
  REQUIRE(Authorize(caller, P::kRead).ok() == c.read);
  REQUIRE(Authorize(caller, P::kWrite).ok() == c.write);
  REQUIRE(Authorize(caller, P::kPrincipals).ok() == c.principals);
  REQUIRE(Authorize(caller, P::kSync).ok() == c.sync);
}

TEST_CASE("rule 9: tokens authenticate their principal but unknown or deleted ones do not") {
  AuthorityFixture f;
  const std::string admin_token = testing::ReadFile(f.dir() / "admin.token");
  absl::StatusOr<Caller> admin =
      f.authority().Authenticate(admin_token.substr(0, admin_token.size() - 1));
  REQUIRE(admin.ok());
  REQUIRE(admin->role == v1::ROLE_ADMIN);
  REQUIRE(absl::IsUnauthenticated(f.authority().Authenticate("").status()));
  REQUIRE(absl::IsUnauthenticated(f.authority().Authenticate(GenerateToken()).status()));

  v1::CreatePrincipalRequest create;
  create.set_name("ci");
  create.set_role(v1::ROLE_MANAGER);
  absl::StatusOr<v1::CreatePrincipalResponse> made = f.authority().CreatePrincipal(*admin, create);
  REQUIRE(made.ok());
  REQUIRE(f.authority().Authenticate(made->token())->role == v1::ROLE_MANAGER);
  REQUIRE(absl::IsPermissionDenied(
      f.authority().CreatePrincipal(*f.authority().Authenticate(made->token()), create).status()));
  v1::DeletePrincipalRequest del;
  del.set_principal_id(made->principal().principal_id());
  REQUIRE(f.authority().DeletePrincipal(*admin, del).ok());
  REQUIRE(absl::IsUnauthenticated(f.authority().Authenticate(made->token()).status()));
}

// Found by CI on etcd: a console test's fresh principal was UNAUTHENTICATED.
// A replica reloads its token table on every principal change (its own and
// other replicas'); a reload that read the store before a creation and
// replaced the table after it dropped the new token until the next reload.
TEST_CASE("a new principal's token works as CreatePrincipal returns, whatever reloads run",
          "[concurrency]") {
  AuthorityFixture f;
  const std::string admin_token = testing::ReadFile(f.dir() / "admin.token");
  const Caller admin = *f.authority().Authenticate(admin_token.substr(0, admin_token.size() - 1));
  std::atomic<bool> stop{false};
  std::atomic<int> failed_reloads{0};
  std::thread reloads([&] {
    while (!stop) failed_reloads += f.authority().ReloadPrincipals().ok() ? 0 : 1;
  });
  int unknown = 0;
  for (int i = 0; i < 40; ++i) {
    v1::CreatePrincipalRequest create;
    create.set_name("p" + std::to_string(i));
    create.set_role(v1::ROLE_MEMBER);
    absl::StatusOr<v1::CreatePrincipalResponse> made = f.authority().CreatePrincipal(admin, create);
    if (!made.ok()) break;
    if (!f.authority().Authenticate(made->token()).ok()) ++unknown;
  }
  stop = true;
  reloads.join();
  REQUIRE(failed_reloads == 0);
  REQUIRE(unknown == 0);
}

TEST_CASE("WhoAmI names the caller's own principal, for every role") {
  AuthorityFixture f;
  const v1::Role role =
      GENERATE(v1::ROLE_ADMIN, v1::ROLE_MANAGER, v1::ROLE_MEMBER, v1::ROLE_SIDECAR);
  v1::CreatePrincipalRequest create;
  create.set_name("who");
  create.set_role(role);
  absl::StatusOr<v1::CreatePrincipalResponse> made =
      f.authority().CreatePrincipal(f.admin(), create);
  REQUIRE(made.ok());
  absl::StatusOr<Caller> caller = f.authority().Authenticate(made->token());
  REQUIRE(caller.ok());
  absl::StatusOr<v1::Principal> me = f.authority().WhoAmI(*caller, {});
  REQUIRE(me.ok());
  REQUIRE(me->principal_id() == made->principal().principal_id());
  REQUIRE(me->name() == "who");
  REQUIRE(me->role() == role);

  v1::DeletePrincipalRequest del;
  del.set_principal_id(me->principal_id());
  REQUIRE(f.authority().DeletePrincipal(f.admin(), del).ok());
  REQUIRE(absl::IsUnauthenticated(f.authority().WhoAmI(*caller, {}).status()));
}

TEST_CASE("rule 9: the last ADMIN principal cannot be deleted") {
  AuthorityFixture f;
  v1::ListPrincipalsRequest list;
  absl::StatusOr<v1::ListPrincipalsResponse> all = f.authority().ListPrincipals(f.admin(), list);
  REQUIRE(all->principals_size() == 1);
  v1::DeletePrincipalRequest del;
  del.set_principal_id(all->principals(0).principal_id());
  REQUIRE(absl::IsFailedPrecondition(f.authority().DeletePrincipal(f.admin(), del).status()));
}

TEST_CASE("rule 9: principal names are unique, ignoring case, and a taken one changes nothing") {
  AuthorityFixture f;
  v1::CreatePrincipalRequest create;
  create.set_name("Deploy Bot");
  create.set_role(v1::ROLE_MANAGER);
  REQUIRE(f.authority().CreatePrincipal(f.admin(), create).ok());
  const uint64_t head = f.store().head_revision();
  for (const char* taken : {"Deploy Bot", "deploy bot", "DEPLOY BOT", "admin"}) {
    create.set_name(taken);
    absl::Status s = f.authority().CreatePrincipal(f.admin(), create).status();
    INFO(taken << ": " << s);
    CHECK(absl::IsAlreadyExists(s));
  }
  CHECK(f.store().head_revision() == head);
  CHECK(f.authority().ListPrincipals(f.admin(), {})->principals_size() == 2);
  create.set_name("Deploy Bot 2");
  CHECK(f.authority().CreatePrincipal(f.admin(), create).ok());
}

TEST_CASE("rule 9: deleting the last two ADMINs at once leaves one", "[concurrency]") {
  for (int round = 0; round < 20; ++round) {
    AuthorityFixture f;
    v1::CreatePrincipalRequest second;
    second.set_name("second admin");
    second.set_role(v1::ROLE_ADMIN);
    REQUIRE(f.authority().CreatePrincipal(f.admin(), second).ok());
    v1::ListPrincipalsResponse all = *f.authority().ListPrincipals(f.admin(), {});
    REQUIRE(all.principals_size() == 2);
    std::atomic<int> deleted{0};
    std::vector<std::thread> threads;
    for (const v1::Principal& p : all.principals()) {
      threads.emplace_back([&, id = p.principal_id()] {
        v1::DeletePrincipalRequest del;
        del.set_principal_id(id);
        if (f.authority().DeletePrincipal(f.admin(), del).ok()) deleted.fetch_add(1);
      });
    }
    for (auto& t : threads) t.join();
    REQUIRE(deleted.load() == 1);
  }
}

TEST_CASE("rule 9: principals' tokens are stored as digests only") {
  AuthorityFixture f;
  v1::CreatePrincipalRequest create;
  create.set_name("sidecar-1");
  create.set_role(v1::ROLE_SIDECAR);
  const std::string token = f.authority().CreatePrincipal(f.admin(), create)->token();
  REQUIRE(f.StoredCopiesOf(token).empty());
}

// Rule 10 --------------------------------------------------------------------

TEST_CASE("rule 10: keys take an optional expire time, which must be in the future") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  v1::GenerateApiKeyRequest req;
  req.set_project_id(project);
  req.set_name("temp");
  *req.mutable_expire_time() = ToProto(absl::Now() + absl::Hours(1));
  absl::StatusOr<v1::GenerateApiKeyResponse> ok = f.authority().GenerateApiKey(f.manager(), req);
  REQUIRE(ok.ok());
  REQUIRE(ok->key().expire_time().seconds() == req.expire_time().seconds());
  *req.mutable_expire_time() = ToProto(absl::Now() - absl::Seconds(1));
  REQUIRE(absl::IsInvalidArgument(f.authority().GenerateApiKey(f.manager(), req).status()));
  req.mutable_expire_time()->set_nanos(-5);
  REQUIRE(absl::IsInvalidArgument(f.authority().GenerateApiKey(f.manager(), req).status()));
}

TEST_CASE("rule 10: an expired key no longer counts against the active-key limit") {
  KeyAuthorityOptions options;
  options.max_active_keys = 2;
  AuthorityFixture f(options);
  const std::string project = f.CreateProject().project().project_id();
  v1::GenerateSecretKeyRequest req;
  req.set_project_id(project);
  req.set_name("short-lived");
  *req.mutable_expire_time() = ToProto(absl::Now() + absl::Milliseconds(300));
  REQUIRE(f.authority().GenerateSecretKey(f.manager(), req).ok());
  REQUIRE(absl::IsResourceExhausted(f.GenerateApiKey(project).status()));
  absl::SleepFor(absl::Milliseconds(400));
  REQUIRE(f.GenerateApiKey(project).ok());
}

TEST_CASE("rule 10: an expired key cannot be rotated back to life") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  v1::GenerateApiKeyRequest req;
  req.set_project_id(project);
  req.set_name("short-lived");
  *req.mutable_expire_time() = ToProto(absl::Now() + absl::Milliseconds(200));
  const std::string id = f.authority().GenerateApiKey(f.manager(), req)->key().key_id();
  absl::SleepFor(absl::Milliseconds(300));
  const uint64_t head = f.store().next_revision();
  v1::RotateApiKeyRequest rotate;
  rotate.set_key_id(id);
  REQUIRE(absl::IsFailedPrecondition(f.authority().RotateApiKey(f.manager(), rotate).status()));
  REQUIRE(f.store().next_revision() == head);
}

TEST_CASE("rule 10: rotating with a grace period keeps the old value valid until then") {
  AuthorityFixture f;
  const v1::CreateProjectResponse created = f.CreateProject();
  const absl::Time before = absl::Now();
  absl::StatusOr<v1::RotateApiKeyResponse> rotated =
      Rotate(f, created.legacy_key().key_id(), absl::Hours(2));
  REQUIRE(rotated.ok());
  const absl::Time until = FromProto(rotated->previous_valid_until());
  REQUIRE(until >= before + absl::Hours(2));
  REQUIRE(until <= absl::Now() + absl::Hours(2));
  // Sidecars learn both values: the new one active, the old one until `until`.
  v1::KeyEvent event = f.store().EventsAfter(rotated->revision() - 1, 1)->at(0);
  REQUIRE(event.upserts_size() == 2);
  REQUIRE(event.upserts(0).state() == v1::KEY_STATE_ACTIVE);
  REQUIRE_FALSE(event.upserts(0).has_expire_time());
  REQUIRE(event.upserts(1).state() == v1::KEY_STATE_ACTIVE);
  REQUIRE(FromProto(event.upserts(1).expire_time()) - until < absl::Milliseconds(1));
}

TEST_CASE("rule 10: without a grace period the old value is revoked at once") {
  AuthorityFixture f;
  const std::string id = f.GenerateApiKey(f.CreateProject().project().project_id())->key().key_id();
  absl::StatusOr<v1::RotateApiKeyResponse> rotated = Rotate(f, id);
  v1::KeyEvent event = f.store().EventsAfter(rotated->revision() - 1, 1)->at(0);
  REQUIRE(event.upserts_size() == 2);
  REQUIRE(event.upserts(1).state() == v1::KEY_STATE_REVOKED);
}

TEST_CASE("rule 10: grace periods are limited to 7 days") {
  AuthorityFixture f;
  const std::string id = f.GenerateApiKey(f.CreateProject().project().project_id())->key().key_id();
  REQUIRE(absl::IsInvalidArgument(Rotate(f, id, absl::Hours(24 * 7 + 1)).status()));
  REQUIRE(absl::IsInvalidArgument(Rotate(f, id, -absl::Seconds(1)).status()));
  REQUIRE(Rotate(f, id, absl::Hours(24 * 7)).ok());
}

TEST_CASE("rule 10: a key rotated many times remembers a bounded number of old values") {
  KeyAuthorityOptions options;
  options.max_retired_values = 3;
  AuthorityFixture f(options);
  const std::string id = f.GenerateApiKey(f.CreateProject().project().project_id())->key().key_id();
  for (int i = 0; i < 5; ++i) REQUIRE(Rotate(f, id).ok());
  v1::KeyEvent last = f.store().EventsAfter(f.store().head_revision() - 1, 1)->at(0);
  REQUIRE(last.upserts_size() == 4);  // current + 3 retired
  REQUIRE(last.removed_digests_size() == 1);
}

TEST_CASE("rule 10: a rotation that would cut a promised grace period short is refused") {
  KeyAuthorityOptions options;
  options.max_retired_values = 2;
  AuthorityFixture f(options);
  const std::string id = f.GenerateApiKey(f.CreateProject().project().project_id())->key().key_id();
  REQUIRE(Rotate(f, id, absl::Hours(1)).ok());
  REQUIRE(Rotate(f, id, absl::Hours(1)).ok());  // two values in their grace period: the limit
  const uint64_t head = f.store().head_revision();
  const v1::Key before = f.GetKey(id);

  // A third value in grace would push out one that was promised an hour.
  absl::Status refused = Rotate(f, id, absl::Hours(1)).status();
  INFO(refused);
  CHECK(absl::IsResourceExhausted(refused));
  CHECK(refused.message().find("grace period") != std::string::npos);
  CHECK(f.store().head_revision() == head);
  CHECK(f.GetKey(id).hint() == before.hint());

  // Without a grace period the value rotated away is the one forgotten, and
  // the promised ones stay.
  absl::StatusOr<v1::RotateApiKeyResponse> now = Rotate(f, id);
  REQUIRE(now.ok());
  const v1::KeyEvent event = f.store().EventsAfter(now->revision() - 1, 1)->at(0);
  CHECK(event.upserts_size() == 3);  // the new value + the two in grace
  for (int i = 1; i < event.upserts_size(); ++i) {
    CHECK(event.upserts(i).state() == v1::KEY_STATE_ACTIVE);
    CHECK(event.upserts(i).has_expire_time());
  }
  CHECK(event.removed_digests_size() == 1);
}

// Across all rules -----------------------------------------------------------

TEST_CASE("an id of the wrong kind is FAILED_PRECONDITION and changes nothing") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const std::string api = f.GenerateApiKey(project)->key().key_id();
  const std::string secret = f.GenerateSecretKey(project)->key().key_id();
  const uint64_t head = f.store().head_revision();
  REQUIRE(absl::IsFailedPrecondition(Revoke(f, secret).status()));
  REQUIRE(absl::IsFailedPrecondition(Delete(f, api, "DELETE").status()));
  REQUIRE(absl::IsFailedPrecondition(Value(f, f.manager(), secret).status()));
  REQUIRE(absl::IsFailedPrecondition(Rotate(f, secret).status()));
  REQUIRE(f.store().head_revision() == head);
  REQUIRE(f.GetKey(api).state() == v1::KEY_STATE_ACTIVE);
  REQUIRE(f.GetKey(secret).state() == v1::KEY_STATE_ACTIVE);
}

TEST_CASE("unknown ids are NOT_FOUND and malformed ids INVALID_ARGUMENT") {
  AuthorityFixture f;
  const uint64_t head = f.store().head_revision();
  REQUIRE(absl::IsNotFound(Revoke(f, GenerateKeyId()).status()));
  REQUIRE(absl::IsNotFound(f.GenerateApiKey(GenerateProjectId()).status()));
  REQUIRE(absl::IsNotFound(Delete(f, GenerateKeyId(), "DELETE").status()));
  REQUIRE(absl::IsInvalidArgument(Revoke(f, "").status()));
  REQUIRE(absl::IsInvalidArgument(Revoke(f, "key_../../etc").status()));
  REQUIRE(absl::IsInvalidArgument(f.GenerateApiKey("nope").status()));
  REQUIRE(f.store().head_revision() == head);
}

TEST_CASE("list pages cover every key once and foreign or malformed page tokens are refused") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const std::string other = f.CreateProject("other").project().project_id();
  for (int i = 0; i < 11; ++i) REQUIRE(f.GenerateApiKey(project).ok());
  v1::ListKeysRequest req;
  req.set_project_id(project);
  req.set_page_size(5);
  std::set<std::string> seen;
  int pages = 0;
  do {
    absl::StatusOr<v1::ListKeysResponse> page = f.authority().ListKeys(f.member(), req);
    REQUIRE(page.ok());
    ++pages;
    for (const v1::Key& k : page->keys()) REQUIRE(seen.insert(k.key_id()).second);
    req.set_page_token(page->next_page_token());
  } while (!req.page_token().empty());
  REQUIRE(seen.size() == 12);
  REQUIRE(pages == 3);

  req.set_page_size(5);
  const std::string token = f.authority().ListKeys(f.member(), req)->next_page_token();
  req.set_project_id(other);
  req.set_page_token(token);
  REQUIRE(absl::IsInvalidArgument(f.authority().ListKeys(f.member(), req).status()));
  req.set_page_token(
      GENERATE(std::string("garbage!"), std::string("AAAA"), std::string(5000, 'A')));
  REQUIRE(absl::IsInvalidArgument(f.authority().ListKeys(f.member(), req).status()));
  req.set_page_size(-1);
  req.set_page_token("");
  REQUIRE(absl::IsInvalidArgument(f.authority().ListKeys(f.member(), req).status()));
}

TEST_CASE("page sizes default to 50 and are capped at 1000") {
  AuthorityFixture f;
  for (int i = 0; i < 60; ++i) f.CreateProject("p" + std::to_string(i));
  v1::ListProjectsRequest req;
  absl::StatusOr<v1::ListProjectsResponse> page = f.authority().ListProjects(f.member(), req);
  REQUIRE(page->projects_size() == 50);
  REQUIRE_FALSE(page->next_page_token().empty());
  req.set_page_size(100000);
  page = f.authority().ListProjects(f.member(), req);
  REQUIRE(page->projects_size() == 60);
  REQUIRE(page->next_page_token().empty());
}

TEST_CASE("usage reports add up in memory and reach the store as one write per flush") {
  AuthorityFixture f;
  const std::string id = f.GenerateApiKey(f.CreateProject().project().project_id())->key().key_id();
  const Caller sidecar{"prn_s", "sidecar", v1::ROLE_SIDECAR};
  const uint64_t writes = f.store().stats().advisory_writes;
  for (int s = 0; s < 2; ++s) {
    v1::ReportUsageRequest report;
    v1::KeyUsage* u = report.add_usage();
    u->set_key_id(id);
    u->set_count(1000 + s);
    *u->mutable_last_used_time() = ToProto(absl::FromUnixSeconds(1700000000 + s));
    REQUIRE(f.authority().RecordUsage(sidecar, report).ok());
  }
  REQUIRE(f.store().stats().advisory_writes == writes);  // summed in memory
  v1::Key key = f.GetKey(id);                            // and read from there
  REQUIRE(key.use_count() == 2001);
  REQUIRE(key.last_used_time().seconds() == 1700000001);

  REQUIRE(f.authority().FlushUsage().ok());
  REQUIRE(f.store().stats().advisory_writes == writes + 1);
  key = f.GetKey(id);
  REQUIRE(key.use_count() == 2001);  // counted once, from the store now
  REQUIRE(key.last_used_time().seconds() == 1700000001);
  REQUIRE(f.authority().FlushUsage().ok());  // nothing new: nothing written
  REQUIRE(f.store().stats().advisory_writes == writes + 1);
  REQUIRE(absl::IsPermissionDenied(f.authority().RecordUsage(f.member(), {})));
}

TEST_CASE("a usage report naming hundreds of keys is accepted and written") {
  // Once a ReportUsage of more than 64 keys failed on etcd (INTERNAL: too
  // many operations in txn request): one compare and one put per key.
  AuthorityFixture f;
  const Caller sidecar{"prn_s", "sidecar", v1::ROLE_SIDECAR};
  v1::ReportUsageRequest report;
  std::vector<std::string> ids;
  for (int p = 0; p < 5; ++p) {
    const std::string project = f.CreateProject().project().project_id();
    for (int k = 0; k < 40; ++k) {
      ids.push_back(f.GenerateApiKey(project)->key().key_id());
      v1::KeyUsage* u = report.add_usage();
      u->set_key_id(ids.back());
      u->set_count(k + 1);
      *u->mutable_last_used_time() = ToProto(absl::FromUnixSeconds(1700000000));
    }
  }
  REQUIRE(f.authority().RecordUsage(sidecar, report).ok());
  absl::Status flushed = f.authority().FlushUsage();
  INFO(flushed);
  REQUIRE(flushed.ok());
  for (size_t i = 0; i < ids.size(); ++i) {
    REQUIRE(f.GetKey(ids[i]).use_count() == i % 40 + 1);
  }
}

TEST_CASE("a usage report that names a key twice counts both") {
  AuthorityFixture f;
  const std::string id = f.GenerateApiKey(f.CreateProject().project().project_id())->key().key_id();
  v1::ReportUsageRequest report;
  for (int i = 0; i < 2; ++i) {
    v1::KeyUsage* u = report.add_usage();
    u->set_key_id(id);
    u->set_count(10 + i);
    *u->mutable_last_used_time() = ToProto(absl::FromUnixSeconds(1700000000 + i));
  }
  REQUIRE(f.authority().RecordUsage({"prn_s", "sidecar", v1::ROLE_SIDECAR}, report).ok());
  const v1::Key key = f.GetKey(id);
  CHECK(key.use_count() == 21);
  CHECK(key.last_used_time().seconds() == 1700000001);
}

TEST_CASE("usage times outside the Timestamp range refuse the whole report") {
  AuthorityFixture f;
  const std::string id = f.GenerateApiKey(f.CreateProject().project().project_id())->key().key_id();
  const Caller sidecar{"prn_s", "sidecar", v1::ROLE_SIDECAR};
  auto report_with = [&](int64_t seconds, int32_t nanos) {
    v1::ReportUsageRequest report;
    v1::KeyUsage* fine = report.add_usage();
    fine->set_key_id(id);
    fine->set_count(1);
    *fine->mutable_last_used_time() = ToProto(absl::FromUnixSeconds(1700000000));
    v1::KeyUsage* bad = report.add_usage();
    bad->set_key_id(id);
    bad->set_count(1);
    bad->set_rejected_count(1);
    bad->mutable_last_rejected_time()->set_seconds(seconds);
    bad->mutable_last_rejected_time()->set_nanos(nanos);
    return f.authority().RecordUsage(sidecar, report);
  };
  CHECK(absl::IsInvalidArgument(report_with(int64_t{1} << 50, 0)));  // past year 9999
  CHECK(absl::IsInvalidArgument(report_with(-(int64_t{1} << 50), 0)));
  CHECK(absl::IsInvalidArgument(report_with(1700000000, -1)));
  CHECK(absl::IsInvalidArgument(report_with(1700000000, 1000000000)));
  CHECK(f.GetKey(id).use_count() == 0);  // nothing of a refused report counts
  CHECK(report_with(1700000000, 0).ok());
  CHECK(f.GetKey(id).use_count() == 2);
}

TEST_CASE("a usage flush racing DeleteSecretKey leaves no usage for the deleted key") {
  testing::TempDir dir;
  std::unique_ptr<testing::ThreadCheckingStore> opened = testing::OpenTestStore(dir, 1000);
  testing::ThreadCheckingStore& store = *opened;
  auto core = KeyAuthority::Create(&store, *Sealer::LoadOrCreate(dir / "master.key"), {});
  REQUIRE(core.ok());
  const Caller manager{"prn_m", "maria", v1::ROLE_MANAGER};
  const Caller sidecar{"prn_s", "sidecar", v1::ROLE_SIDECAR};
  v1::CreateProjectRequest project;
  project.set_name("shop");
  v1::GenerateSecretKeyRequest gen;
  gen.set_project_id((*core)->CreateProject(manager, project)->project().project_id());
  gen.set_name("backend");
  const std::string id = (*core)->GenerateSecretKey(manager, gen)->key().key_id();
  v1::ReportUsageRequest report;
  report.add_usage()->set_key_id(id);
  report.mutable_usage(0)->set_count(1);
  REQUIRE((*core)->RecordUsage(sidecar, report).ok());

  // The flush reads the key, then its write waits; the deletion commits in
  // that wait.
  store.DelayUsageWrites(300);
  std::thread flusher([&] { CHECK((*core)->FlushUsage().ok()); });
  absl::SleepFor(absl::Milliseconds(100));
  v1::DeleteSecretKeyRequest del;
  del.set_key_id(id);
  del.set_confirm("DELETE");
  REQUIRE((*core)->DeleteSecretKey(manager, del).ok());
  flusher.join();
  // The etcd store hears its own writes through its watch: give it a moment.
  absl::SleepFor(absl::Milliseconds(200));
  CHECK(store.GetUsage(id)->empty());
}

TEST_CASE("usage flushed before a restart and after it adds up") {
  testing::TempDir dir;
  std::unique_ptr<testing::ThreadCheckingStore> opened = testing::OpenTestStore(dir, 1000);
  testing::ThreadCheckingStore& store = *opened;
  const Sealer sealer = *Sealer::LoadOrCreate(dir / "master.key");
  std::unique_ptr<KeyAuthority> a = *KeyAuthority::Create(&store, sealer, {});
  const Caller manager{"prn_m", "maria", v1::ROLE_MANAGER};
  const Caller sidecar{"prn_s", "sidecar", v1::ROLE_SIDECAR};
  v1::CreateProjectRequest project;
  project.set_name("shop");
  const v1::CreateProjectResponse created = *a->CreateProject(manager, project);
  const std::string id = created.legacy_key().key_id();
  v1::GetKeyRequest get;
  get.set_key_id(id);
  auto report = [&](KeyAuthority& authority, uint64_t count) {
    v1::ReportUsageRequest r;
    r.add_usage()->set_key_id(id);
    r.mutable_usage(0)->set_count(count);
    REQUIRE(authority.RecordUsage(sidecar, r).ok());
  };

  // The next authority on the store writes as the same writer: it takes the
  // rows over and adds to them.
  report(*a, 1000);
  REQUIRE(a->FlushUsage().ok());
  a.reset();
  // (A store on etcd reads the rows from its watch: the next process opens
  // its store after this one's last flush, and reads them from etcd.)
  REQUIRE(testing::Eventually([&] { return store.GetUsage(id)->size() == 1; }));
  std::unique_ptr<KeyAuthority> b = *KeyAuthority::Create(&store, sealer, {});
  report(*b, 1);
  REQUIRE(b->FlushUsage().ok());
  REQUIRE(testing::Eventually([&] { return b->GetKey(manager, get)->use_count() == 1001; }));
  report(*b, 10);
  REQUIRE(b->GetKey(manager, get)->use_count() == 1011);
}
}  // namespace
}  // namespace latchkey

namespace latchkey {
namespace {

TEST_CASE("rule 7 holds under concurrent creates: exactly the limit is reached", "[concurrency]") {
  testing::AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  std::atomic<int> created{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        absl::StatusOr<v1::GenerateApiKeyResponse> r = f.GenerateApiKey(project);
        if (r.ok()) {
          ++created;
        } else if (absl::IsResourceExhausted(r.status())) {
          ++refused;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  REQUIRE(created == 49);  // + the legacy key = 50
  REQUIRE(refused == 80 - 49);
  REQUIRE(f.ListKeys(project).size() == 50);
}

TEST_CASE("rule 7 holds across two authorities over one store: 40 creates on each, 50 keys",
          "[concurrency]") {
  testing::AuthorityFixture f;
  std::unique_ptr<KeyAuthority> replica = f.Replica();
  const std::string project = f.CreateProject().project().project_id();
  std::atomic<int> created{0}, refused{0}, failed{0};
  std::vector<std::thread> threads;
  for (KeyAuthority* authority : {&f.authority(), replica.get()}) {
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, authority] {
        for (int i = 0; i < 20; ++i) {
          v1::GenerateApiKeyRequest req;
          req.set_project_id(project);
          req.set_name("ingest");
          absl::StatusOr<v1::GenerateApiKeyResponse> r =
              authority->GenerateApiKey(f.manager(), req);
          if (r.ok()) {
            ++created;
          } else if (absl::IsResourceExhausted(r.status())) {
            ++refused;
          } else {
            ++failed;
          }
        }
      });
    }
  }
  for (std::thread& t : threads) t.join();
  REQUIRE(failed == 0);
  REQUIRE(created == 49);  // + the legacy key = 50
  REQUIRE(refused == 80 - 49);
  REQUIRE(f.ListKeys(project).size() == 50);
}

TEST_CASE("rule 9 holds across two authorities over one store: one of the last two ADMINs stays",
          "[concurrency]") {
  testing::TempDir dir;
  std::unique_ptr<testing::ThreadCheckingStore> opened = testing::OpenTestStore(dir, 1000);
  testing::ThreadCheckingStore& store = *opened;
  absl::StatusOr<Sealer> sealer = Sealer::LoadOrCreate(dir / "master.key");
  REQUIRE(sealer.ok());
  std::unique_ptr<KeyAuthority> a = *KeyAuthority::Create(&store, *sealer, {});
  std::unique_ptr<KeyAuthority> b = *KeyAuthority::Create(&store, *sealer, {});
  REQUIRE(*a->BootstrapAdmin(dir / "admin.token"));
  const Caller admin{"prn_admin", "admin", v1::ROLE_ADMIN};
  v1::CreatePrincipalRequest second;
  second.set_name("second admin");
  second.set_role(v1::ROLE_ADMIN);
  REQUIRE(b->CreatePrincipal(admin, second).ok());
  v1::ListPrincipalsResponse all = *a->ListPrincipals(admin, {});
  REQUIRE(all.principals_size() == 2);
  // Both deletions read two ADMINs before either commits.
  store.GatherAppends(2);
  std::atomic<int> deleted{0}, refused{0};
  std::vector<std::thread> threads;
  KeyAuthority* authorities[] = {a.get(), b.get()};
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i, id = all.principals(i).principal_id()] {
      v1::DeletePrincipalRequest del;
      del.set_principal_id(id);
      absl::Status s = authorities[i]->DeletePrincipal(admin, del).status();
      if (s.ok()) ++deleted;
      if (absl::IsFailedPrecondition(s)) ++refused;
    });
  }
  for (auto& t : threads) t.join();
  REQUIRE(deleted == 1);
  REQUIRE(refused == 1);
  REQUIRE(a->ListPrincipals(admin, {})->principals_size() == 1);
  REQUIRE(a->conflict_retries() + b->conflict_retries() >= 1);
}

}  // namespace
}  // namespace latchkey

namespace latchkey {
namespace {

TEST_CASE(
    "a committed change says whether principals or webhooks changed, whichever replica made it") {
  testing::AuthorityFixture f;
  std::vector<KeyAuthority::Consequences> heard;
  Mutex mu;
  f.store().SetCommitListener([&](const v1::KeyEvent& e, const v1::AuditEvent&, TableSet w) {
    const KeyAuthority::Consequences c = f.authority().Committed(e, w);
    MutexLock lock(&mu);
    heard.push_back(c);
  });
  v1::CreateProjectRequest project;
  project.set_name("shop");
  REQUIRE(f.authority().CreateProject(f.manager(), project).ok());
  v1::CreatePrincipalRequest principal;
  principal.set_name("ingest");
  principal.set_role(v1::ROLE_SIDECAR);
  REQUIRE(f.authority().CreatePrincipal(f.admin(), principal).ok());
  v1::CreateWebhookRequest webhook;
  webhook.set_url("https://127.0.0.1:1/hook");
  webhook.add_events("key.revoked");
  REQUIRE(f.authority().CreateWebhook(f.admin(), webhook).ok());
  // A shared store may tell its listener a moment after the commit returns.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  auto count = [&] {
    MutexLock lock(&mu);
    return heard.size();
  };
  while (count() < 3 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  f.store().SetCommitListener(nullptr);

  MutexLock lock(&mu);
  REQUIRE(heard.size() == 3);
  CHECK_FALSE(heard[0].principals);
  CHECK_FALSE(heard[0].webhooks);
  CHECK(heard[1].principals);
  CHECK_FALSE(heard[1].webhooks);
  CHECK_FALSE(heard[2].principals);
  CHECK(heard[2].webhooks);
}

TEST_CASE("what a committed change asks follows the tables it wrote, not its audit action") {
  testing::AuthorityFixture f;
  const v1::KeyEvent event;
  auto of = [](std::initializer_list<Table> tables) {
    TableSet s;
    for (Table t : tables) s.Add(t);
    return s;
  };
  CHECK(f.authority().Committed(event, of({Table::kPrincipals, Table::kGuards})).principals);
  CHECK(f.authority().Committed(event, of({Table::kRoleBindings})).principals);
  CHECK_FALSE(f.authority().Committed(event, of({Table::kRoleBindings})).webhooks);
  CHECK(f.authority().Committed(event, of({Table::kWebhooks})).webhooks);
  CHECK_FALSE(f.authority().Committed(event, of({Table::kWebhooks})).principals);
  const KeyAuthority::Consequences keys =
      f.authority().Committed(event, of({Table::kKeys, Table::kSidecarKeys, Table::kDigests}));
  CHECK_FALSE(keys.principals);
  CHECK_FALSE(keys.webhooks);
  // A store that cannot tell (a replica that caught up from the rows): all.
  CHECK(f.authority().Committed(event, TableSet::All()).principals);
  CHECK(f.authority().Committed(event, TableSet::All()).webhooks);
}

}  // namespace
}  // namespace latchkey
