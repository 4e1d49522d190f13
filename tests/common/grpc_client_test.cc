#include "common/grpc_client.h"

#include <catch2/catch.hpp>
#include <thread>

#include "latchkey/v1/key_sync.grpc.pb.h"

namespace latchkey {
namespace {

// A KeySync whose Watch sends `progress` messages (head revisions 1..n), then
// either ends with `status` or, when `hold` is set, waits until the call is
// cancelled. Acknowledge echoes the applied revision back as an error
// message, so the test sees what arrived.
class ScriptedSync final : public v1::KeySync::Service {
 public:
  int messages = 3;
  bool hold = false;
  grpc::Status status = grpc::Status::OK;

  grpc::Status Watch(grpc::ServerContext* ctx, const v1::WatchRequest*,
                     grpc::ServerWriter<v1::WatchResponse>* writer) override {
    for (int i = 1; i <= messages; ++i) {
      v1::WatchResponse msg;
      msg.mutable_progress()->set_head_revision(i);
      if (!writer->Write(msg)) return grpc::Status::CANCELLED;
    }
    while (hold && !ctx->IsCancelled()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return status;
  }
  grpc::Status Acknowledge(grpc::ServerContext*, const v1::AcknowledgeRequest* req,
                           v1::AcknowledgeResponse*) override {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        std::to_string(req->applied_revision()));
  }
};

struct Harness {
  explicit Harness(ScriptedSync* service) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service);
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
    stub = v1::KeySync::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                    grpc::InsecureChannelCredentials()));
  }
  ~Harness() { server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1)); }

  std::shared_ptr<StreamReader<v1::WatchResponse>> Watch() {
    return StreamReader<v1::WatchResponse>::Open(
        [this](grpc::ClientContext* ctx, auto* r) { stub->async()->Watch(ctx, &request, r); });
  }

  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::KeySync::Stub> stub;
  v1::WatchRequest request;
};

TEST_CASE("a stream reader reads every message in order, then the stream's status") {
  ScriptedSync service;
  service.messages = 50;
  service.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "going away");
  Harness h(&service);
  auto stream = h.Watch();
  v1::WatchResponse msg;
  std::vector<uint64_t> heads;
  while (stream->Read(&msg)) heads.push_back(msg.progress().head_revision());
  REQUIRE(heads.size() == 50);
  for (size_t i = 0; i < heads.size(); ++i) REQUIRE(heads[i] == i + 1);
  const grpc::Status s = stream->Finish();
  REQUIRE(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  REQUIRE(s.error_message() == "going away");
  REQUIRE_FALSE(stream->Read(&msg));  // stays ended
}

TEST_CASE("cancelling a stream reader wakes a thread blocked in Read") {
  ScriptedSync service;
  service.messages = 1;
  service.hold = true;
  Harness h(&service);
  auto stream = h.Watch();
  v1::WatchResponse msg;
  REQUIRE(stream->Read(&msg));
  bool more = true;
  std::thread reader([&] { more = stream->Read(&msg); });  // blocks: the server holds
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stream->context()->TryCancel();
  reader.join();
  REQUIRE_FALSE(more);
  REQUIRE(stream->Finish().error_code() == grpc::StatusCode::CANCELLED);
}

TEST_CASE("a stream reader may stop early: cancel, then Finish") {
  ScriptedSync service;
  service.messages = 1000;
  service.hold = true;
  Harness h(&service);
  for (int round = 0; round < 20; ++round) {
    auto stream = h.Watch();
    v1::WatchResponse msg;
    REQUIRE(stream->Read(&msg));
    stream->context()->TryCancel();  // messages may still be on their way
    REQUIRE(stream->Finish().error_code() == grpc::StatusCode::CANCELLED);
  }
}

TEST_CASE("CallAndWait returns the call's status") {
  ScriptedSync service;
  Harness h(&service);
  grpc::ClientContext ctx;
  v1::AcknowledgeRequest req;
  req.set_applied_revision(42);
  v1::AcknowledgeResponse resp;
  const grpc::Status s =
      CallAndWait([&](auto done) { h.stub->async()->Acknowledge(&ctx, &req, &resp, done); });
  REQUIRE(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  REQUIRE(s.error_message() == "42");
}

}  // namespace
}  // namespace latchkey
