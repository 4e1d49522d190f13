// The RPC metrics interceptor on a server of its own (the Validator service
// over an empty key set): calls counted by service, method and code, timed,
// and unknown paths folded into one label.
#include "authority/rpc/rpc_metrics.h"

#include <grpcpp/generic/generic_stub.h>

#include <catch2/catch.hpp>
#include <future>

#include "common/grpc_server.h"
#include "sidecar/validator_service.h"
#include "tests/testing/clients.h"

namespace latchkey {
namespace {

struct Intercepted {
  Registry registry;
  RpcMetrics metrics{&registry};
  KeySet keys;
  UsageCounter usage;
  ValidatorService service{&keys, &usage, nullptr, ValidatorOptions{.max_batch = 1}};
  std::unique_ptr<grpc::Server> server;
  std::shared_ptr<grpc::Channel> channel;

  explicit Intercepted(std::vector<std::string> self_counted = {}) {
    EnableServerPlugins();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
    factories.push_back(metrics.Interceptor(std::move(self_counted)));
    builder.experimental().SetInterceptorCreators(std::move(factories));
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
    channel = testing::Channel("127.0.0.1:" + std::to_string(port));
  }
  ~Intercepted() { server->Shutdown(); }

  bool Has(const std::string& line) const {
    return registry.Render().find(line) != std::string::npos;
  }
};

TEST_CASE("each call is counted by service, method and status code, and timed") {
  Intercepted s;
  auto stub = v1::Validator::NewStub(s.channel);
  v1::ValidateResponse one;
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext ctx;
    REQUIRE(stub->Validate(&ctx, v1::ValidateRequest(), &one).ok());
  }
  v1::ValidateBatchRequest batch;
  batch.add_keys("a");
  batch.add_keys("b");  // over max_batch = 1
  v1::ValidateBatchResponse many;
  grpc::ClientContext ctx;
  REQUIRE(stub->ValidateBatch(&ctx, batch, &many).error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);

  REQUIRE(
      s.Has("latchkey_rpcs_total{service=\"latchkey.v1.Validator\",method=\"Validate\",code=\"OK\"}"
            " 2\n"));
  REQUIRE(
      s.Has("latchkey_rpcs_total{service=\"latchkey.v1.Validator\",method=\"ValidateBatch\","
            "code=\"INVALID_ARGUMENT\"} 1\n"));
  REQUIRE(
      s.Has("latchkey_rpc_duration_seconds_count{service=\"latchkey.v1.Validator\","
            "method=\"Validate\"} 2\n"));
}

TEST_CASE("methods whose handlers count themselves are not intercepted") {
  Intercepted s({"/latchkey.v1.Validator/Validate"});
  auto stub = v1::Validator::NewStub(s.channel);
  grpc::ClientContext one_ctx;
  v1::ValidateResponse one;
  REQUIRE(stub->Validate(&one_ctx, v1::ValidateRequest(), &one).ok());
  v1::ValidateBatchRequest batch;
  batch.add_keys("a");
  v1::ValidateBatchResponse many;
  grpc::ClientContext batch_ctx;
  REQUIRE(stub->ValidateBatch(&batch_ctx, batch, &many).ok());
  CHECK(s.registry.Render().find("method=\"Validate\"") == std::string::npos);
  CHECK(
      s.Has("latchkey_rpcs_total{service=\"latchkey.v1.Validator\",method=\"ValidateBatch\","
            "code=\"OK\"} 1\n"));
  // What such a handler calls when its call ends.
  s.metrics.Count("latchkey.v1.Validator", "Validate", grpc::StatusCode::OK,
                  std::chrono::steady_clock::now());
  CHECK(
      s.Has("latchkey_rpcs_total{service=\"latchkey.v1.Validator\",method=\"Validate\",code=\"OK\"}"
            " 1\n"));
}

TEST_CASE("paths the server does not serve share the label unknown") {
  Intercepted s;
  grpc::GenericStub stub(s.channel);
  for (const std::string path : {"/evil.Service/Method", "/latchkey.v1.Validator/Nope", "/x"}) {
    grpc::ClientContext ctx;
    grpc::Slice body("", 0);
    grpc::ByteBuffer request(&body, 1), response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, path, {}, &request, &response,
                   [&](grpc::Status st) { done.set_value(st); });
    REQUIRE(done.get_future().get().error_code() == grpc::StatusCode::UNIMPLEMENTED);
  }
  REQUIRE(s.Has(
      "latchkey_rpcs_total{service=\"unknown\",method=\"unknown\",code=\"UNIMPLEMENTED\"} 3\n"));
  REQUIRE(s.registry.Render().find("evil") == std::string::npos);
}

}  // namespace
}  // namespace latchkey
