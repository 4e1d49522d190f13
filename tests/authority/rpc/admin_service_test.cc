// KeyAdmin over real gRPC on port 0: how a call's bearer token is read, and
// that the core's statuses reach the client unchanged.
#include "authority/rpc/admin_service.h"

#include <catch2/catch.hpp>

#include "common/key_format.h"
#include "tests/testing/clients.h"
#include "tests/testing/services.h"

namespace latchkey {
namespace {

using testing::Services;

grpc::Status WhoAmI(Services& s, const std::string& authorization, v1::Principal* out) {
  auto stub = v1::KeyAdmin::NewStub(testing::Channel(s.address()));
  grpc::ClientContext ctx;
  if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
  return stub->WhoAmI(&ctx, v1::WhoAmIRequest(), out);
}

TEST_CASE("the token is read from 'authorization: Bearer', in any case of 'Bearer'") {
  Services s;
  const std::string token = s.admin().token;
  v1::Principal me;
  REQUIRE(WhoAmI(s, "Bearer " + token, &me).ok());
  REQUIRE(me.role() == v1::ROLE_ADMIN);
  REQUIRE(WhoAmI(s, "bearer " + token, &me).ok());
  REQUIRE(WhoAmI(s, "BEARER " + token, &me).ok());
  for (const std::string& bad : {std::string(), "Basic " + token, token, "Bearer" + token,
                                 std::string("Bearer "), "Bearer  " + token}) {
    INFO(bad.substr(0, 8));
    const grpc::Status refused = WhoAmI(s, bad, &me);
    REQUIRE(refused.error_code() == grpc::StatusCode::UNAUTHENTICATED);
    REQUIRE(refused.error_message().find(token) == std::string::npos);
  }
}

TEST_CASE("the core's refusals reach the client with their code and message") {
  Services s;
  const std::string unknown = GenerateKeyId();
  v1::GetKeyRequest req;
  req.set_key_id(unknown);
  v1::Key out;
  grpc::Status missing = s.admin().Call(&v1::KeyAdmin::Stub::GetKey, req, &out);
  REQUIRE(missing.error_code() == grpc::StatusCode::NOT_FOUND);
  REQUIRE(missing.error_message().find(unknown) != std::string::npos);
  req.set_key_id("nonsense");
  REQUIRE(s.admin().Call(&v1::KeyAdmin::Stub::GetKey, req, &out).error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);

  const std::string member = s.admin().CreatePrincipal("viewer", v1::ROLE_MEMBER);
  testing::Admin viewer(s.address(), member);
  v1::CreateProjectRequest create;
  create.set_name("nope");
  v1::CreateProjectResponse created;
  REQUIRE(viewer.Call(&v1::KeyAdmin::Stub::CreateProject, create, &created).error_code() ==
          grpc::StatusCode::PERMISSION_DENIED);
}

TEST_CASE("many concurrent mutations through the work queue are each answered once") {
  Services s;
  const std::string project = s.admin().CreateProject("busy").project().project_id();
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      testing::Admin mine(s.address(), s.admin().token);
      for (int i = 0; i < 5; ++i) {
        v1::GenerateApiKeyRequest req;
        req.set_project_id(project);
        req.set_name("c" + std::to_string(c) + "-" + std::to_string(i));
        v1::GenerateApiKeyResponse resp;
        if (mine.Call(&v1::KeyAdmin::Stub::GenerateApiKey, req, &resp).ok()) ok.fetch_add(1);
      }
    });
  }
  for (auto& t : clients) t.join();
  REQUIRE(ok.load() == 40);
  REQUIRE(s.store().off_worker_calls() == 0);
}

}  // namespace
}  // namespace latchkey
