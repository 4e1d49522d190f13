#include "common/grpc_client.h"

#include <catch2/catch.hpp>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "latchkey/v1/key_sync.grpc.pb.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

// A KeySync whose Sync reads the first request, sends `progress` messages
// (head revisions 1..n), then, when `echo` is set, answers every later
// request with a progress message carrying its applied revision until the
// client closes its side; otherwise it ends with `status` or, when `hold` is
// set, waits until the call is cancelled. Acknowledge echoes the applied
// revision back as an error message, so the test sees what arrived.
class ScriptedSync final : public v1::KeySync::Service {
 public:
  int messages = 3;
  bool hold = false;
  bool echo = false;
  grpc::Status status = grpc::Status::OK;

  grpc::Status Sync(grpc::ServerContext* ctx,
                    grpc::ServerReaderWriter<v1::WatchResponse, v1::SyncRequest>* stream) override {
    v1::SyncRequest req;
    if (!stream->Read(&req) || !req.has_watch()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no watch request first");
    }
    v1::WatchResponse msg;
    for (int i = 1; i <= messages; ++i) {
      msg.mutable_progress()->set_head_revision(i);
      if (!stream->Write(msg)) return grpc::Status::CANCELLED;
    }
    while (echo && stream->Read(&req)) {
      msg.mutable_progress()->set_head_revision(req.acknowledgement().applied_revision());
      if (!stream->Write(msg)) return grpc::Status::CANCELLED;
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

using SyncStream = BidiStream<v1::SyncRequest, v1::WatchResponse>;

v1::SyncRequest Ack(uint64_t revision) {
  v1::SyncRequest req;
  req.mutable_acknowledgement()->set_applied_revision(revision);
  return req;
}

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

  // A Sync call that has sent its watch request.
  std::shared_ptr<SyncStream> Sync(SyncStream::Quick quick = nullptr) {
    auto stream = SyncStream::Open(
        [this](grpc::ClientContext* ctx, SyncStream::Reactor* r) { stub->async()->Sync(ctx, r); },
        std::move(quick));
    v1::SyncRequest first;
    first.mutable_watch();
    REQUIRE(stream->Send(first));
    return stream;
  }

  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::KeySync::Stub> stub;
};

TEST_CASE("a bidi stream reads every message in order, then the stream's status") {
  ScriptedSync service;
  service.messages = 50;
  service.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "going away");
  Harness h(&service);
  auto stream = h.Sync();
  v1::WatchResponse msg;
  std::vector<uint64_t> heads;
  while (stream->Read(&msg)) heads.push_back(msg.progress().head_revision());
  REQUIRE(heads.size() == 50);
  for (size_t i = 0; i < heads.size(); ++i) REQUIRE(heads[i] == i + 1);
  const grpc::Status s = stream->Finish();
  REQUIRE(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  REQUIRE(s.error_message() == "going away");
  REQUIRE_FALSE(stream->Read(&msg));  // stays ended
  REQUIRE_FALSE(stream->Send(Ack(1)));
}

TEST_CASE("a quick handler takes its messages on gRPC's thread, and Read gets the rest in order") {
  ScriptedSync service;
  service.messages = 50;
  Harness h(&service);
  std::mutex mu;
  std::vector<uint64_t> quick;
  std::vector<std::thread::id> quick_threads;
  auto stream = h.Sync([&](const v1::WatchResponse& msg) {
    if (msg.progress().head_revision() % 2 == 1) return false;  // odd ones go to Read
    std::lock_guard<std::mutex> lock(mu);
    quick.push_back(msg.progress().head_revision());
    quick_threads.push_back(std::this_thread::get_id());
    return true;
  });
  v1::WatchResponse msg;
  std::vector<uint64_t> read;
  while (stream->Read(&msg)) read.push_back(msg.progress().head_revision());
  REQUIRE(stream->Finish().ok());
  std::lock_guard<std::mutex> lock(mu);
  REQUIRE(read.size() == 25);
  REQUIRE(quick.size() == 25);
  for (size_t i = 0; i < 25; ++i) {
    REQUIRE(read[i] == 2 * i + 1);
    REQUIRE(quick[i] == 2 * i + 2);
    REQUIRE(quick_threads[i] != std::this_thread::get_id());
  }
}

TEST_CASE("cancelling a bidi stream wakes a thread blocked in Read") {
  ScriptedSync service;
  service.messages = 1;
  service.hold = true;
  Harness h(&service);
  auto stream = h.Sync();
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

TEST_CASE("a bidi stream may stop early: cancel, then Finish, with writes in flight") {
  ScriptedSync service;
  service.messages = 1000;
  service.hold = true;
  Harness h(&service);
  for (int round = 0; round < 100; ++round) {
    auto stream = h.Sync();
    v1::WatchResponse msg;
    REQUIRE(stream->Read(&msg));
    for (uint64_t i = 1; i <= 10; ++i) stream->Send(Ack(i));  // nobody reads them
    stream->context()->TryCancel();                           // messages may still be on their way
    REQUIRE(stream->Finish().error_code() == grpc::StatusCode::CANCELLED);
  }
}

TEST_CASE("sends arrive in order, and those sent while one is written collapse to the newest") {
  ScriptedSync service;
  service.messages = 0;
  service.echo = true;
  Harness h(&service);
  auto stream = h.Sync();
  constexpr uint64_t kSent = 2000;
  for (uint64_t i = 1; i <= kSent; ++i) REQUIRE(stream->Send(Ack(i)));
  REQUIRE(stream->WaitWritten(absl::Seconds(10)));
  stream->CloseWrites();
  REQUIRE_FALSE(stream->Send(Ack(kSent + 1)));  // the writing side is closed
  std::vector<uint64_t> echoed;
  v1::WatchResponse msg;
  while (stream->Read(&msg)) echoed.push_back(msg.progress().head_revision());
  REQUIRE(stream->Finish().ok());  // the server saw the close and returned
  REQUIRE(!echoed.empty());
  CHECK(echoed.back() == kSent);  // the newest is never dropped
  for (size_t i = 1; i < echoed.size(); ++i) REQUIRE(echoed[i - 1] < echoed[i]);
  INFO("arrived " << echoed.size() << " of " << kSent);
  CHECK(echoed.size() < kSent);  // the rest waited behind a write and were replaced
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

namespace latchkey {
namespace {

// Without KeepCallbackThreads gRPC aborts here within 100 rounds, in most runs
// (grpc_cq_internal_unref, "prior > 0"): each round's channel is the only
// user of gRPC's callback queue, and its last reference goes on one of the
// queue's own threads, as a BidiStream's context goes in OnDone.
TEST_CASE("once latchkey has called, a channel may end on gRPC's callback thread") {
  const std::string target = "127.0.0.1:" + std::to_string(testing::PickFreePort());
  {
    // The first call, on a channel that is gone before the rounds start.
    auto stub =
        v1::KeySync::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::AcknowledgeRequest req;
    v1::AcknowledgeResponse resp;
    REQUIRE(CallAndWait([&](auto done) {
              stub->async()->Acknowledge(&ctx, &req, &resp, done);
            }).error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  for (int round = 0; round < 100; ++round) {
    struct Call {
      std::unique_ptr<v1::KeySync::Stub> stub;
      grpc::ClientContext ctx;  // holds the channel once the call starts
      v1::AcknowledgeRequest req;
      v1::AcknowledgeResponse resp;
    };
    auto call = std::make_shared<Call>();
    call->stub =
        v1::KeySync::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
    std::promise<grpc::StatusCode> ended;
    Call* raw = call.get();
    raw->stub->async()->Acknowledge(&raw->ctx, &raw->req, &raw->resp,
                                    [call = std::move(call), &ended](grpc::Status s) mutable {
                                      call.reset();  // the channel's last reference
                                      ended.set_value(s.error_code());
                                    });
    REQUIRE(ended.get_future().get() == grpc::StatusCode::UNAVAILABLE);
    // gRPC's thread goes on reading its queue after the callback.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace
}  // namespace latchkey
