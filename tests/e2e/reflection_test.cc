// Server reflection as grpcurl uses it: `grpcurl -plaintext ADDR list`.
// Its own binary: it links no server code, so its minimal reflection client
// proto cannot clash with the one inside libgrpc++_reflection.
#include <catch2/catch.hpp>
#include <set>

#include "tests/testing/proto/reflection_client.grpc.pb.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

using grpc::reflection::v1alpha::ServerReflection;
using grpc::reflection::v1alpha::ServerReflectionRequest;
using grpc::reflection::v1alpha::ServerReflectionResponse;

TEST_CASE("the authority lists its services through server reflection") {
  testing::TempDir dir;
  const int port = testing::PickFreePort();
  testing::Subprocess authority(
      {testing::Binary("latchkey-authority"), "--listen", "127.0.0.1:" + std::to_string(port),
       "--data-dir", dir / "data", "--metrics-listen", "127.0.0.1:0"},
      dir / "authority.log");
  REQUIRE(authority.WaitForLog("serving on", std::chrono::seconds(20)));

  auto stub = ServerReflection::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto stream = stub->ServerReflectionInfo(&ctx);
  ServerReflectionRequest req;
  req.set_list_services("");
  REQUIRE(stream->Write(req));
  ServerReflectionResponse resp;
  REQUIRE(stream->Read(&resp));
  stream->WritesDone();
  std::set<std::string> services;
  for (const auto& s : resp.list_services_response().service()) services.insert(s.name());
  REQUIRE(services.count("latchkey.v1.KeyAdmin") == 1);
  REQUIRE(services.count("latchkey.v1.KeySync") == 1);
  REQUIRE(services.count("grpc.health.v1.Health") == 1);
}

}  // namespace
}  // namespace latchkey
