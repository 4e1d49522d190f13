// KeyAdmin over real gRPC on port 0, against a real store in a temp dir.
#include "authority/server.h"

#include <catch2/catch.hpp>
#include <cstdio>

#include "common/crypto.h"
#include "common/files.h"
#include "common/key_format.h"
#include "tests/testing/clients.h"
#include "tests/testing/test_issuer.h"

namespace latchkey {
namespace {

using testing::Admin;

struct Running {
  testing::TempDir dir;
  std::unique_ptr<AuthorityServer> server;

  Running() {
    AuthorityOptions options;
    options.listen.addresses = {"127.0.0.1:0"};
    options.data_dir = dir / "data";
    absl::StatusOr<std::unique_ptr<AuthorityServer>> started = AuthorityServer::Start(options);
    REQUIRE(started.ok());
    server = *std::move(started);
  }
  std::string admin_token() { return testing::TokenFrom(server->admin_token_path()); }
};

TEST_CASE("calls without a valid bearer token are UNAUTHENTICATED") {
  Running r;
  const std::string bad = GENERATE(std::string(""), std::string("not-a-token"), GenerateToken());
  Admin client(r.server->address(), bad);
  v1::ListProjectsResponse resp;
  grpc::Status s = client.Call(&v1::KeyAdmin::Stub::ListProjects, v1::ListProjectsRequest{}, &resp);
  REQUIRE(s.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  // The error never echoes the token.
  if (!bad.empty()) REQUIRE(s.error_message().find(bad) == std::string::npos);
}

TEST_CASE(
    "with --oidc-issuer-url, an ID token is a bearer credential and its roles come from "
    "bindings") {
  testing::TestIssuer issuer;
  const std::string kid = issuer.AddKey("ES256");
  testing::TempDir dir;
  AuthorityOptions options;
  options.listen.addresses = {"127.0.0.1:0"};
  options.data_dir = dir / "data";
  options.oidc.issuer_url = issuer.url();
  options.oidc.client_id = "latchkey";
  absl::StatusOr<std::unique_ptr<AuthorityServer>> server = AuthorityServer::Start(options);
  REQUIRE(server.ok());
  const std::string address = (*server)->address();
  Admin admin(address, testing::TokenFrom((*server)->admin_token_path()));
  v1::CreateRoleBindingRequest bind;
  bind.set_group("platform");
  bind.set_role(v1::ROLE_ADMIN);
  v1::RoleBinding binding;
  REQUIRE(admin.Call(&v1::KeyAdmin::Stub::CreateRoleBinding, bind, &binding).ok());

  const std::string token =
      issuer.Sign(issuer.Claims("latchkey", "alice@example.com", {"platform"}), kid);
  Admin alice(address, token);
  v1::CreateProjectRequest create;
  create.set_name("shop");
  v1::CreateProjectResponse made;
  REQUIRE(alice.Call(&v1::KeyAdmin::Stub::CreateProject, create, &made).ok());
  CHECK(made.project().created_by() == "alice@example.com");
  v1::Principal me;
  REQUIRE(alice.Call(&v1::KeyAdmin::Stub::WhoAmI, v1::WhoAmIRequest{}, &me).ok());
  CHECK(me.credential() == "oidc");
  CHECK(me.principal_id() == "oidc:" + issuer.url() + "#sub-alice@example.com");
  REQUIRE(me.bindings_size() == 1);
  CHECK(me.bindings(0).binding_id() == binding.binding_id());

  // For another audience: UNAUTHENTICATED, saying why, never echoing it.
  const std::string other =
      issuer.Sign(issuer.Claims("grafana", "alice@example.com", {"platform"}), kid);
  v1::ListProjectsResponse list;
  grpc::Status refused =
      Admin(address, other)
          .Call(&v1::KeyAdmin::Stub::ListProjects, v1::ListProjectsRequest{}, &list);
  CHECK(refused.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK_THAT(refused.error_message(), Catch::Contains("another audience"));
  CHECK(refused.error_message().find(other.substr(0, 40)) == std::string::npos);
  // Principal tokens keep working beside ID tokens.
  CHECK(admin.Call(&v1::KeyAdmin::Stub::ListProjects, v1::ListProjectsRequest{}, &list).ok());
}

TEST_CASE("a wrong role is PERMISSION_DENIED over gRPC and a right one works") {
  Running r;
  Admin admin(r.server->address(), r.admin_token());
  Admin member(r.server->address(), admin.CreatePrincipal("viewer", v1::ROLE_MEMBER));
  Admin sidecar(r.server->address(), admin.CreatePrincipal("pod-1", v1::ROLE_SIDECAR));
  v1::CreateProjectRequest req;
  req.set_name("shop");
  v1::CreateProjectResponse resp;
  REQUIRE(member.Call(&v1::KeyAdmin::Stub::CreateProject, req, &resp).error_code() ==
          grpc::StatusCode::PERMISSION_DENIED);
  v1::ListProjectsResponse list;
  REQUIRE(sidecar.Call(&v1::KeyAdmin::Stub::ListProjects, v1::ListProjectsRequest{}, &list)
              .error_code() == grpc::StatusCode::PERMISSION_DENIED);
  REQUIRE(admin.Call(&v1::KeyAdmin::Stub::CreateProject, req, &resp).ok());
  REQUIRE(member.Call(&v1::KeyAdmin::Stub::ListProjects, v1::ListProjectsRequest{}, &list).ok());
  REQUIRE(list.projects_size() == 1);
}

TEST_CASE("the core's status codes reach gRPC clients unchanged") {
  Running r;
  Admin admin(r.server->address(), r.admin_token());
  const v1::CreateProjectResponse p = admin.CreateProject("shop");
  v1::Key key;
  REQUIRE(admin.Revoke(p.legacy_key().key_id(), &key).error_code() ==
          grpc::StatusCode::FAILED_PRECONDITION);
  REQUIRE(admin.Revoke(GenerateKeyId()).error_code() == grpc::StatusCode::NOT_FOUND);
  REQUIRE(admin.Revoke("bogus").error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  v1::DeleteSecretKeyRequest del;
  del.set_key_id(admin.GenerateSecretKey(p.project().project_id()).key().key_id());
  del.set_confirm("delete");
  v1::DeleteSecretKeyResponse dresp;
  REQUIRE(admin.Call(&v1::KeyAdmin::Stub::DeleteSecretKey, del, &dresp).error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_CASE("the authority reports SERVING on gRPC health checking") {
  Running r;
  REQUIRE(testing::Health(testing::Channel(r.server->address())) == "SERVING");
}

TEST_CASE("no key value, API or secret, is on disk in plaintext") {
  Running r;
  Admin admin(r.server->address(), r.admin_token());
  std::vector<std::string> values;
  for (int i = 0; i < 5; ++i) {
    const v1::CreateProjectResponse p = admin.CreateProject("p" + std::to_string(i));
    values.push_back(p.legacy_api_key());
    values.push_back(admin.GenerateApiKey(p.project().project_id()).api_key());
    values.push_back(admin.GenerateSecretKey(p.project().project_id()).secret_key());
    v1::RotateApiKeyRequest rot;
    rot.set_key_id(p.legacy_key().key_id());
    v1::RotateApiKeyResponse rotated;
    REQUIRE(admin.Call(&v1::KeyAdmin::Stub::RotateApiKey, rot, &rotated).ok());
    values.push_back(rotated.api_key());
  }
  r.server->Shutdown();  // flush everything RocksDB will write
  for (const std::string& v : values) {
    INFO("value " << KeyHint(v));
    REQUIRE(testing::FilesContaining(r.dir.path(), v).empty());
    // Nor the random part alone.
    REQUIRE(testing::FilesContaining(r.dir.path(), v.substr(4, 32)).empty());
  }
}

TEST_CASE("a listener beyond loopback without TLS is refused") {
  testing::TempDir dir;
  AuthorityOptions options;
  options.listen.addresses = {"0.0.0.0:0"};
  options.data_dir = dir / "data";
  absl::StatusOr<std::unique_ptr<AuthorityServer>> started = AuthorityServer::Start(options);
  REQUIRE(absl::IsInvalidArgument(started.status()));
  // Refused for this reason, not another bad option.
  REQUIRE_THAT(std::string(started.status().message()),
               Catch::Contains("refusing to listen on 0.0.0.0:0 without TLS"));
}

TEST_CASE("a lost or replaced master key stops the start and is never silently replaced") {
  testing::TempDir dir;
  AuthorityOptions options;
  options.listen.addresses = {"127.0.0.1:0"};
  options.data_dir = dir / "data";
  const std::string key_file = dir / "data/master.key";
  std::string project_id;
  {
    absl::StatusOr<std::unique_ptr<AuthorityServer>> first = AuthorityServer::Start(options);
    REQUIRE(first.ok());
    Admin admin((*first)->address(), testing::TokenFrom((*first)->admin_token_path()));
    project_id = admin.CreateProject("shop").project().project_id();  // seals its legacy key
  }
  const absl::StatusOr<std::string> original = ReadPrivateFile(key_file);
  REQUIRE(original.ok());
  REQUIRE(original->size() == Sealer::kKeyBytes);

  SECTION("missing or empty: refused, and no new key is written") {
    const bool empty = GENERATE(false, true);
    REQUIRE(std::remove(key_file.c_str()) == 0);
    if (empty) REQUIRE(WritePrivateFile(key_file, "").ok());
    absl::StatusOr<std::unique_ptr<AuthorityServer>> started = AuthorityServer::Start(options);
    INFO(started.status());
    CHECK(absl::IsFailedPrecondition(started.status()));
    CHECK(started.status().message().find("restore") != std::string::npos);
    CHECK(ReadPrivateFile(key_file).value_or("?").empty());
  }
  SECTION("another key: refused at start, not on the first key read") {
    std::string other = *original;
    other[0] = static_cast<char>(other[0] ^ 0x5a);
    REQUIRE(WritePrivateFile(key_file, other).ok());
    absl::StatusOr<std::unique_ptr<AuthorityServer>> started = AuthorityServer::Start(options);
    INFO(started.status());
    CHECK(absl::IsFailedPrecondition(started.status()));
    CHECK(started.status().message().find("master key") != std::string::npos);
  }
  SECTION("the original key back: starts and opens every value") {
    absl::StatusOr<std::unique_ptr<AuthorityServer>> started = AuthorityServer::Start(options);
    REQUIRE(started.ok());
    Admin admin((*started)->address(), testing::TokenFrom((*started)->admin_token_path()));
    v1::ListKeysRequest list;
    list.set_project_id(project_id);
    v1::ListKeysResponse keys;
    REQUIRE(admin.Call(&v1::KeyAdmin::Stub::ListKeys, list, &keys).ok());
    REQUIRE(keys.keys_size() == 1);
    v1::GetApiKeyValueRequest read;
    read.set_key_id(keys.keys(0).key_id());
    v1::GetApiKeyValueResponse value;
    CHECK(admin.Call(&v1::KeyAdmin::Stub::GetApiKeyValue, read, &value).ok());
  }
}

}  // namespace
}  // namespace latchkey
