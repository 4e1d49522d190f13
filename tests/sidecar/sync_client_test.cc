// The sync client against a scripted authority that breaks the watch
// contract: what it asks for next, and how soon.
#include "sidecar/sync_client.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

// Every stream: a snapshot at revision 5, then an event at revision 7 (a
// gap), then silence until the client hangs up.
class GappyAuthority final : public v1::KeySync::Service {
 public:
  grpc::Status Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                     grpc::ServerWriter<v1::WatchResponse>* writer) override {
    {
      MutexLock lock(&mu_);
      requests_.push_back(*req);
    }
    v1::WatchResponse m;
    m.set_store_id("st_gappy");
    m.mutable_snapshot_chunk();
    writer->Write(m);
    m.mutable_snapshot_end()->set_revision(5);
    writer->Write(m);
    m.mutable_event()->set_revision(7);
    writer->Write(m);
    while (!ctx->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return grpc::Status::OK;
  }
  grpc::Status Acknowledge(grpc::ServerContext*, const v1::AcknowledgeRequest*,
                           v1::AcknowledgeResponse*) override {
    return grpc::Status::OK;
  }

  std::vector<v1::WatchRequest> requests() {
    MutexLock lock(&mu_);
    return requests_;
  }

 private:
  Mutex mu_;
  std::vector<v1::WatchRequest> requests_ ABSL_GUARDED_BY(mu_);
};

TEST_CASE("after a contract violation the sidecar resyncs by snapshot, backing off") {
  GappyAuthority authority;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&authority);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  REQUIRE(server != nullptr);

  KeySet keys;
  SyncOptions options;
  options.channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  options.sidecar_id = "sc-test";
  options.min_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(200);
  SyncClient client(options, &keys);
  client.Start();
  REQUIRE(testing::Eventually([&] { return client.state().contract_violations >= 4; }));
  const SyncClient::State state = client.state();
  client.Stop();
  server->Shutdown();

  const std::vector<v1::WatchRequest> requests = authority.requests();
  REQUIRE(requests.size() >= 4);
  for (const v1::WatchRequest& req : requests) {
    INFO("request " << req.ShortDebugString());
    CHECK(req.after_revision() == 0);  // never a replay from the revision that went wrong
  }
  CHECK(state.applied == 5);  // the snapshot, never the event past the gap
  // Streams that answer and then break the contract do not reset the wait.
  CHECK(state.backoff > options.min_backoff);
}

}  // namespace
}  // namespace latchkey
