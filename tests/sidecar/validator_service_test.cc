// The Validator service over real gRPC on port 0, on its own: a key set filled
// by hand, no authority. Verdicts, batches, the stale policy, usage counts and
// metrics.
#include "sidecar/validator_service.h"

#include <catch2/catch.hpp>

#include "common/crypto.h"
#include "common/grpc_server.h"
#include "common/key_format.h"
#include "tests/testing/clients.h"

namespace latchkey {
namespace {

struct Served {
  KeySet keys;
  UsageCounter usage;
  Registry registry;
  ValidationMetrics metrics{registry};
  std::atomic<bool> rejecting{false};
  const std::string project_id = GenerateProjectId();
  std::unique_ptr<ValidatorService> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::Validator::Stub> stub;

  explicit Served(size_t max_batch = 10000) {
    ValidatorOptions options;
    options.max_batch = max_batch;
    options.rejecting = [this] { return rejecting.load(); };
    service = std::make_unique<ValidatorService>(&keys, &usage, &metrics, options);
    EnableServerPlugins();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
    stub = v1::Validator::NewStub(testing::Channel("127.0.0.1:" + std::to_string(port)));
  }
  ~Served() { server->Shutdown(); }

  // A key the set knows, in `state`.
  std::string Add(v1::KeyState state = v1::KEY_STATE_ACTIVE) {
    const std::string value = GenerateKey(v1::API_KEY);
    v1::KeyEvent event;
    v1::KeyEntry* e = event.add_upserts();
    e->set_digest(Sha256Bytes(value));
    e->set_key_id(GenerateKeyId());
    e->set_project_id(project_id);
    e->set_kind(v1::API_KEY);
    e->set_state(state);
    REQUIRE(keys.Apply(event).ok());
    return value;
  }

  v1::ValidateResponse Validate(const std::string& key) {
    grpc::ClientContext ctx;
    v1::ValidateRequest req;
    req.set_key(key);
    v1::ValidateResponse resp;
    REQUIRE(stub->Validate(&ctx, req, &resp).ok());
    return resp;
  }
};

TEST_CASE("Validate answers each verdict from memory, with the key's ids when known") {
  Served s;
  const std::string valid = s.Add();
  const std::string revoked = s.Add(v1::KEY_STATE_REVOKED);
  const v1::ValidateResponse ok = s.Validate(valid);
  REQUIRE(ok.verdict() == v1::VALID);
  REQUIRE(ok.project_id() == s.project_id);
  REQUIRE(ok.kind() == v1::API_KEY);
  REQUIRE(ok.key_id().size() == 20);
  REQUIRE(s.Validate(revoked).verdict() == v1::REVOKED);
  REQUIRE(s.Validate(GenerateKey(v1::API_KEY)).verdict() == v1::UNKNOWN);
  REQUIRE(s.Validate("not a key").verdict() == v1::MALFORMED);
  REQUIRE(s.Validate("").verdict() == v1::MALFORMED);
}

TEST_CASE("ValidateBatch answers in request order and refuses batches over the limit") {
  Served s(/*max_batch=*/3);
  const std::string valid = s.Add();
  grpc::ClientContext ctx;
  v1::ValidateBatchRequest req;
  for (const std::string& k : {valid, std::string("junk"), GenerateKey(v1::SECRET_KEY)}) {
    req.add_keys(k);
  }
  v1::ValidateBatchResponse resp;
  REQUIRE(s.stub->ValidateBatch(&ctx, req, &resp).ok());
  REQUIRE(resp.results_size() == 3);
  REQUIRE(resp.results(0).verdict() == v1::VALID);
  REQUIRE(resp.results(1).verdict() == v1::MALFORMED);
  REQUIRE(resp.results(2).verdict() == v1::UNKNOWN);

  req.add_keys(valid);
  grpc::ClientContext too_many;
  grpc::Status refused = s.stub->ValidateBatch(&too_many, req, &resp);
  REQUIRE(refused.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  REQUIRE(refused.error_message().find(valid) == std::string::npos);  // no key in errors
}

TEST_CASE("while rejecting (stale), known keys are UNKNOWN but malformed stays MALFORMED") {
  Served s;
  const std::string valid = s.Add();
  s.rejecting = true;
  REQUIRE(s.Validate(valid).verdict() == v1::UNKNOWN);
  REQUIRE(s.Validate("junk").verdict() == v1::MALFORMED);
  s.rejecting = false;
  REQUIRE(s.Validate(valid).verdict() == v1::VALID);
}

TEST_CASE("VALID verdicts and rejections of known keys are counted for the usage report") {
  Served s;
  const std::string valid = s.Add();
  const std::string revoked = s.Add(v1::KEY_STATE_REVOKED);
  for (int i = 0; i < 3; ++i) s.Validate(valid);
  s.Validate(revoked);
  s.Validate(GenerateKey(v1::API_KEY));  // unknown: nobody to count it for
  const v1::ReportUsageRequest report = s.usage.Drain();
  REQUIRE(report.usage_size() == 2);
  uint64_t valid_count = 0, rejected = 0;
  for (const v1::KeyUsage& u : report.usage()) {
    valid_count += u.count();
    rejected += u.rejected_count();
  }
  REQUIRE(valid_count == 3);
  REQUIRE(rejected == 1);
}

TEST_CASE("each verdict is counted in the metrics") {
  Served s;
  const std::string valid = s.Add();
  s.Validate(valid);
  s.Validate(valid);
  s.Validate("junk");
  const std::string text = s.registry.Render();
  REQUIRE(text.find("latchkey_validations_total{verdict=\"VALID\"} 2\n") != std::string::npos);
  REQUIRE(text.find("latchkey_validations_total{verdict=\"MALFORMED\"} 1\n") != std::string::npos);
  REQUIRE(text.find("latchkey_validation_check_seconds_count 3\n") != std::string::npos);
}

}  // namespace
}  // namespace latchkey
