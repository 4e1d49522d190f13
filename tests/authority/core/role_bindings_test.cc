// Role bindings and per-project authorization (docs/design.md, "Sign-in and
// roles"), on the core: people come through Authenticate with ID tokens that
// a stand-in verifier vouches for (the real one has its own tests, in
// tests/authority/identity/).
#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

#include "absl/strings/str_split.h"
#include "authority/core/internal/requests.h"
#include "authority/core/key_authority.h"
#include "tests/testing/authority_fixture.h"

namespace latchkey {
namespace {

using testing::AuthorityFixture;

constexpr char kIssuer[] = "https://login.example.com";

// An authority whose ID tokens are "idtoken.<username>.<group>" (dots in the
// username written as '~'): the verifier vouches for any such token.
class People : public AuthorityFixture {
 public:
  People() {
    authority().SetIdTokenVerifier([](std::string_view token) -> absl::StatusOr<OidcIdentity> {
      std::vector<std::string> parts =
          absl::StrSplit(absl::string_view(token.data(), token.size()), '.');
      if (parts.size() != 3 || parts[0] != "idtoken") {
        return absl::UnauthenticatedError("ID token refused: bad signature");
      }
      std::replace(parts[1].begin(), parts[1].end(), '~', '.');
      OidcIdentity id{kIssuer, "sub-" + parts[1], parts[1], {}};
      if (!parts[2].empty()) id.groups.push_back(parts[2]);
      return id;
    });
  }

  // The caller a person's ID token authenticates as, roles resolved.
  Caller Person(const std::string& username, const std::string& group = "") {
    std::string encoded = username;
    std::replace(encoded.begin(), encoded.end(), '.', '~');
    absl::StatusOr<Caller> caller = authority().Authenticate("idtoken." + encoded + "." + group);
    REQUIRE(caller.ok());
    return *caller;
  }

  v1::RoleBinding Bind(v1::CreateRoleBindingRequest req) {
    absl::StatusOr<v1::RoleBinding> b = authority().CreateRoleBinding(admin(), req);
    REQUIRE(b.ok());
    return *b;
  }
  v1::RoleBinding BindUser(const std::string& user, v1::Role role, const std::string& project) {
    v1::CreateRoleBindingRequest req;
    req.set_user(user);
    req.set_role(role);
    req.set_project_id(project);
    return Bind(req);
  }
  v1::RoleBinding BindGroup(const std::string& group, v1::Role role) {
    v1::CreateRoleBindingRequest req;
    req.set_group(group);
    req.set_role(role);
    return Bind(req);
  }
};

v1::GetProjectRequest GetProjectReq(const std::string& id) {
  v1::GetProjectRequest req;
  req.set_project_id(id);
  return req;
}

std::vector<std::string> VisibleProjects(KeyAuthority& authority, const Caller& caller) {
  v1::ListProjectsRequest req;
  req.set_page_size(100);
  absl::StatusOr<v1::ListProjectsResponse> resp = authority.ListProjects(caller, req);
  REQUIRE(resp.ok());
  std::vector<std::string> ids;
  for (const v1::Project& p : resp->projects()) ids.push_back(p.project_id());
  return ids;
}

TEST_CASE("a person with no binding holds no role: every project is NOT_FOUND to them") {
  People f;
  const std::string a = f.CreateProject("A").project().project_id();
  const Caller nobody = f.Person("eve@example.com");
  CHECK(nobody.role == v1::ROLE_UNSPECIFIED);
  absl::StatusOr<v1::Project> got = f.authority().GetProject(nobody, GetProjectReq(a));
  REQUIRE(got.status().code() == absl::StatusCode::kNotFound);
  // Word for word what a project that does not exist answers.
  absl::StatusOr<v1::Project> missing =
      f.authority().GetProject(f.admin(), GetProjectReq("prj_000000000000"));
  CHECK(std::string(got.status().message()) == "no project " + a);
  CHECK(std::string(missing.status().message()) == "no project prj_000000000000");
  CHECK(f.authority().ListProjects(nobody, {}).status().code() ==
        absl::StatusCode::kPermissionDenied);
}

TEST_CASE("a MANAGER of project A sees only A, changes keys there, and B does not exist to them") {
  People f;
  const v1::CreateProjectResponse a = f.CreateProject("A");
  const v1::CreateProjectResponse b = f.CreateProject("B");
  const std::string pa = a.project().project_id(), pb = b.project().project_id();
  f.BindUser("bob@example.com", v1::ROLE_MANAGER, pa);
  const Caller bob = f.Person("bob@example.com");

  CHECK(VisibleProjects(f.authority(), bob) == std::vector<std::string>{pa});
  CHECK(f.authority().GetProject(bob, GetProjectReq(pa)).ok());
  CHECK(f.authority().GetProject(bob, GetProjectReq(pb)).status().code() ==
        absl::StatusCode::kNotFound);

  v1::GenerateApiKeyRequest gen;
  gen.set_name("ingest");
  gen.set_project_id(pa);
  absl::StatusOr<v1::GenerateApiKeyResponse> made = f.authority().GenerateApiKey(bob, gen);
  REQUIRE(made.ok());
  // The key's creator and the audit name the person, with the stable id.
  CHECK(made->key().created_by() == "bob@example.com");
  const std::vector<v1::AuditEvent> audit = f.Audit(pa);
  CHECK(audit.back().actor() == "bob@example.com");
  CHECK(audit.back().actor_id() == StrCat("oidc:", kIssuer, "#sub-bob@example.com"));
  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(made->key().key_id());
  CHECK(f.authority().RevokeApiKey(bob, revoke).ok());

  // B: nothing bob does there reaches it, and each refusal is NOT_FOUND.
  gen.set_project_id(pb);
  CHECK(f.authority().GenerateApiKey(bob, gen).status().code() == absl::StatusCode::kNotFound);
  revoke.set_key_id(f.GenerateApiKey(pb)->key().key_id());
  CHECK(f.authority().RevokeApiKey(bob, revoke).status().code() == absl::StatusCode::kNotFound);
  v1::GetKeyRequest get;
  get.set_key_id(b.legacy_key().key_id());
  CHECK(f.authority().GetKey(bob, get).status().code() == absl::StatusCode::kNotFound);
  v1::RotateApiKeyRequest rotate;
  rotate.set_key_id(b.legacy_key().key_id());
  CHECK(f.authority().RotateApiKey(bob, rotate).status().code() == absl::StatusCode::kNotFound);
  v1::ListKeysRequest list;
  list.set_project_id(pb);
  CHECK(f.authority().ListKeys(bob, list).status().code() == absl::StatusCode::kNotFound);
  v1::SetApiAccessRequest access;
  access.set_project_id(pb);
  CHECK(f.authority().SetApiAccess(bob, access).status().code() == absl::StatusCode::kNotFound);
  CHECK(f.GetKey(b.legacy_key().key_id()).state() == v1::KEY_STATE_ACTIVE);
  // Nor may bob create projects or read the organization's audit log.
  v1::CreateProjectRequest create;
  create.set_name("C");
  CHECK(f.authority().CreateProject(bob, create).status().code() ==
        absl::StatusCode::kPermissionDenied);
  CHECK(f.authority().ListAuditEvents(bob, {}).status().code() ==
        absl::StatusCode::kPermissionDenied);
}

TEST_CASE("paging through ListProjects never hands a caller the id of a project it cannot see") {
  People f;
  std::set<std::string> visible;
  for (int i = 0; i < 6; ++i) {
    const std::string id = f.CreateProject("P" + std::to_string(i)).project().project_id();
    if (i % 3 == 0) {
      f.BindUser("bob@example.com", v1::ROLE_MEMBER, id);
      visible.insert(id);
    }
  }
  const Caller bob = f.Person("bob@example.com");
  std::set<std::string> listed;
  v1::ListProjectsRequest req;
  req.set_page_size(1);
  for (int pages = 0; pages < 10; ++pages) {
    absl::StatusOr<v1::ListProjectsResponse> page = f.authority().ListProjects(bob, req);
    REQUIRE(page.ok());
    for (const v1::Project& p : page->projects()) listed.insert(p.project_id());
    if (page->next_page_token().empty()) break;
    // The token names the last project returned, one bob may see.
    absl::StatusOr<std::string> after =
        internal::DecodePageToken(page->next_page_token(), "projects");
    REQUIRE(after.ok());
    CHECK(visible.contains(*after));
    req.set_page_token(page->next_page_token());
  }
  CHECK(listed == visible);
}

TEST_CASE("a person's ID token never syncs keys, whatever role bindings give it") {
  People f;
  f.BindGroup("platform", v1::ROLE_ADMIN);
  const Caller alice = f.Person("alice@example.com", "platform");
  CHECK(Authorize(alice, Permission::kWebhooks).ok());
  CHECK(Authorize(alice, Permission::kSync).code() == absl::StatusCode::kPermissionDenied);
}

TEST_CASE("FindKey answers only for keys of projects the caller may see") {
  People f;
  const v1::CreateProjectResponse a = f.CreateProject("A");
  const v1::CreateProjectResponse b = f.CreateProject("B");
  f.BindUser("bob@example.com", v1::ROLE_MANAGER, a.project().project_id());
  const Caller bob = f.Person("bob@example.com");
  v1::FindKeyRequest find;
  find.set_value(a.legacy_api_key());
  CHECK(f.authority().FindKey(bob, find).ok());
  find.set_value(b.legacy_api_key());
  absl::StatusOr<v1::Key> hidden = f.authority().FindKey(bob, find);
  REQUIRE(hidden.status().code() == absl::StatusCode::kNotFound);
  // The same answer as a value latchkey never issued.
  find.set_value(GenerateKey(v1::API_KEY));
  CHECK(hidden.status().message() == f.authority().FindKey(bob, find).status().message());
  // The project's own audit records the refused lookup.
  CHECK(f.Audit(b.project().project_id()).back().action() == "key.lookup_refused");
}

TEST_CASE(
    "a group bound ADMIN organization-wide does everything, and a MEMBER in a project reads "
    "there only") {
  People f;
  f.BindGroup("platform", v1::ROLE_ADMIN);
  const Caller alice = f.Person("alice@example.com", "platform");
  CHECK(alice.role == v1::ROLE_ADMIN);
  v1::CreateProjectRequest create;
  create.set_name("A");
  absl::StatusOr<v1::CreateProjectResponse> a = f.authority().CreateProject(alice, create);
  REQUIRE(a.ok());
  const std::string pa = a->project().project_id();
  v1::CreateRoleBindingRequest bind;
  bind.set_user("mo@example.com");
  bind.set_role(v1::ROLE_MEMBER);
  bind.set_project_id(pa);
  REQUIRE(f.authority().CreateRoleBinding(alice, bind).ok());

  const Caller mo = f.Person("mo@example.com");
  v1::ListKeysRequest list;
  list.set_project_id(pa);
  CHECK(f.authority().ListKeys(mo, list).ok());
  v1::GenerateApiKeyRequest gen;
  gen.set_project_id(pa);
  gen.set_name("x");
  CHECK(f.authority().GenerateApiKey(mo, gen).status().code() ==
        absl::StatusCode::kPermissionDenied);
  v1::GetApiKeyValueRequest value;
  value.set_key_id(a->legacy_key().key_id());
  CHECK(f.authority().GetApiKeyValue(mo, value).status().code() ==
        absl::StatusCode::kPermissionDenied);
  // Someone outside the group is no ADMIN.
  CHECK(f.Person("alice@example.com", "sales").role == v1::ROLE_UNSPECIFIED);
}

TEST_CASE("a principal's binding raises its role in one project only") {
  People f;
  const std::string pa = f.CreateProject("A").project().project_id();
  const std::string pb = f.CreateProject("B").project().project_id();
  v1::CreatePrincipalRequest make;
  make.set_name("ci");
  make.set_role(v1::ROLE_MEMBER);
  absl::StatusOr<v1::CreatePrincipalResponse> ci = f.authority().CreatePrincipal(f.admin(), make);
  REQUIRE(ci.ok());
  v1::CreateRoleBindingRequest bind;
  bind.set_principal("CI");  // names match ignoring case
  bind.set_role(v1::ROLE_MANAGER);
  bind.set_project_id(pa);
  const v1::RoleBinding binding = f.Bind(bind);
  CHECK(binding.principal_id() == ci->principal().principal_id());

  absl::StatusOr<Caller> caller = f.authority().Authenticate(ci->token());
  REQUIRE(caller.ok());
  v1::GenerateApiKeyRequest gen;
  gen.set_name("x");
  gen.set_project_id(pa);
  CHECK(f.authority().GenerateApiKey(*caller, gen).ok());
  // In B its own role (MEMBER) holds: it sees B, and may not write there.
  gen.set_project_id(pb);
  CHECK(f.authority().GenerateApiKey(*caller, gen).status().code() ==
        absl::StatusCode::kPermissionDenied);
  // WhoAmI says how it signed in and which bindings name it.
  absl::StatusOr<v1::Principal> me = f.authority().WhoAmI(*caller, {});
  REQUIRE(me.ok());
  CHECK(me->credential() == "token");
  REQUIRE(me->bindings_size() == 1);
  CHECK(me->bindings(0).binding_id() == binding.binding_id());
}

TEST_CASE("an unbound role is gone at once, and binding changes are audited") {
  People f;
  const std::string pa = f.CreateProject("A").project().project_id();
  const v1::RoleBinding b = f.BindUser("bob@example.com", v1::ROLE_MANAGER, pa);
  CHECK(f.authority().GetProject(f.Person("bob@example.com"), GetProjectReq(pa)).ok());
  v1::DeleteRoleBindingRequest del;
  del.set_binding_id(b.binding_id());
  REQUIRE(f.authority().DeleteRoleBinding(f.admin(), del).ok());
  CHECK(f.authority().GetProject(f.Person("bob@example.com"), GetProjectReq(pa)).status().code() ==
        absl::StatusCode::kNotFound);
  const std::vector<v1::AuditEvent> audit = f.Audit(pa);
  REQUIRE(audit.size() >= 2);
  CHECK(audit[audit.size() - 2].action() == "role.bound");
  CHECK(audit.back().action() == "role.unbound");
  CHECK_THAT(audit.back().detail(), Catch::Contains("user bob@example.com role=ROLE_MANAGER"));
  CHECK(f.authority().DeleteRoleBinding(f.admin(), del).status().code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE("bad role bindings get a clear status and change nothing") {
  People f;
  const std::string pa = f.CreateProject("A").project().project_id();
  struct Case {
    std::string principal, user, group, project;
    v1::Role role;
    absl::StatusCode code;
  };
  const Case c = GENERATE_COPY(
      Case{"", "", "", "", v1::ROLE_ADMIN, absl::StatusCode::kInvalidArgument},
      Case{"", "bob", "platform", "", v1::ROLE_ADMIN, absl::StatusCode::kInvalidArgument},
      Case{"", "bob", "", "", v1::ROLE_SIDECAR, absl::StatusCode::kInvalidArgument},
      Case{"", "bob", "", "", v1::ROLE_UNSPECIFIED, absl::StatusCode::kInvalidArgument},
      Case{"", "bo\nb", "", "", v1::ROLE_ADMIN, absl::StatusCode::kInvalidArgument},
      Case{"", std::string(300, 'b'), "", "", v1::ROLE_ADMIN, absl::StatusCode::kInvalidArgument},
      Case{"", "bob", "", "prj_000000000000", v1::ROLE_ADMIN, absl::StatusCode::kNotFound},
      Case{"", "bob", "", "nope", v1::ROLE_ADMIN, absl::StatusCode::kInvalidArgument},
      Case{"nobody", "", "", "", v1::ROLE_ADMIN, absl::StatusCode::kNotFound});
  v1::CreateRoleBindingRequest req;
  req.set_principal(c.principal);
  req.set_user(c.user);
  req.set_group(c.group);
  req.set_project_id(c.project);
  req.set_role(c.role);
  CHECK(f.authority().CreateRoleBinding(f.admin(), req).status().code() == c.code);
  CHECK(f.authority().ListRoleBindings(f.admin(), {})->bindings_size() == 0);
  (void)pa;
}

TEST_CASE("only an ADMIN binds, one binding per subject and scope, never to a SIDECAR") {
  People f;
  const std::string pa = f.CreateProject("A").project().project_id();
  v1::CreateRoleBindingRequest req;
  req.set_user("bob@example.com");
  req.set_role(v1::ROLE_MANAGER);
  req.set_project_id(pa);
  CHECK(f.authority().CreateRoleBinding(f.manager(), req).status().code() ==
        absl::StatusCode::kPermissionDenied);
  CHECK(f.authority().ListRoleBindings(f.manager(), {}).status().code() ==
        absl::StatusCode::kPermissionDenied);
  f.Bind(req);
  req.set_role(v1::ROLE_ADMIN);
  CHECK(f.authority().CreateRoleBinding(f.admin(), req).status().code() ==
        absl::StatusCode::kAlreadyExists);
  req.set_project_id("");  // organization-wide is another scope
  CHECK(f.authority().CreateRoleBinding(f.admin(), req).ok());

  v1::CreatePrincipalRequest make;
  make.set_name("edge");
  make.set_role(v1::ROLE_SIDECAR);
  REQUIRE(f.authority().CreatePrincipal(f.admin(), make).ok());
  v1::CreateRoleBindingRequest sidecar;
  sidecar.set_principal("edge");
  sidecar.set_role(v1::ROLE_MEMBER);
  CHECK(f.authority().CreateRoleBinding(f.admin(), sidecar).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  v1::ListRoleBindingsRequest in_a;
  in_a.set_project_id(pa);
  CHECK(f.authority().ListRoleBindings(f.admin(), in_a)->bindings_size() == 1);
  CHECK(f.authority().ListRoleBindings(f.admin(), {})->bindings_size() == 2);
}

TEST_CASE("a replica learns bindings another committed when it reloads") {
  People f;
  const std::string pa = f.CreateProject("A").project().project_id();
  std::unique_ptr<KeyAuthority> replica = f.Replica();
  replica->SetIdTokenVerifier([](std::string_view) -> absl::StatusOr<OidcIdentity> {
    return OidcIdentity{kIssuer, "sub-bob", "bob@example.com", {}};
  });
  f.BindUser("bob@example.com", v1::ROLE_MANAGER, pa);
  CHECK(replica->Authenticate("a.b.c")->project_roles.empty());
  REQUIRE(replica->ReloadPrincipals().ok());
  CHECK(replica->Authenticate("a.b.c")->project_roles.at(pa) == v1::ROLE_MANAGER);
}

TEST_CASE("without an ID-token verifier, a JWT-shaped bearer is UNAUTHENTICATED") {
  AuthorityFixture f;
  absl::StatusOr<Caller> caller = f.authority().Authenticate("eyJh.eyJz.c2ln");
  REQUIRE(caller.status().code() == absl::StatusCode::kUnauthenticated);
  CHECK_THAT(std::string(caller.status().message()), Catch::Contains("--oidc-issuer-url"));
}

}  // namespace
}  // namespace latchkey
