// Hostile input on every service: the server answers with a status or drops
// that client, keeps serving everyone else, and its memory stays bounded.
#include <grpcpp/generic/generic_stub.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>

#include "latchkey/v1/key_sync.grpc.pb.h"
#include "tests/testing/cluster.h"

namespace latchkey {
namespace {

long PeakRssKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// A raw unary call with arbitrary bytes as the request body.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& body, const std::string& token = "") {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(body);
  grpc::ByteBuffer request(&slice, 1), response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status result;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    std::lock_guard<std::mutex> lock(mu);
    result = s;
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  return result;
}

TEST_CASE("garbage and oversized request bodies get a status, and serving goes on") {
  testing::Cluster c;
  SidecarServer& s = c.AddSidecar();
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  REQUIRE(c.AllCaughtUp());
  auto authority = testing::Channel(c.authority().address());
  auto sidecar = testing::Channel(s.address());
  const std::string garbage("\xff\xfe\x07garbage\x00\x01\x02\xff", 14);
  for (const char* method :
       {"/latchkey.v1.KeyAdmin/CreateProject", "/latchkey.v1.KeyAdmin/RevokeApiKey",
        "/latchkey.v1.KeySync/Acknowledge", "/latchkey.v1.KeySync/Sync",
        "/latchkey.v1.KeyAdmin/NoSuchMethod"}) {
    INFO(method);
    REQUIRE_FALSE(RawCall(authority, method, garbage, c.admin().token).ok());
  }
  // The two streams parse their own requests (they are served raw).
  for (const char* method : {"/latchkey.v1.KeySync/Sync", "/latchkey.v1.KeySync/Watch"}) {
    INFO(method);
    CHECK(RawCall(authority, method, garbage, c.admin().token).error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);
  }
  REQUIRE_FALSE(RawCall(sidecar, "/latchkey.v1.Validator/Validate", garbage).ok());
  // Truncated: a valid request cut in half.
  v1::ValidateRequest req;
  req.set_key(p.legacy_api_key());
  const std::string whole = req.SerializeAsString();
  REQUIRE_FALSE(RawCall(sidecar, "/latchkey.v1.Validator/Validate", whole.substr(0, 10)).ok());
  // Over the 4 MiB receive limit.
  const grpc::Status big =
      RawCall(sidecar, "/latchkey.v1.Validator/Validate", std::string(5 << 20, 'x'));
  REQUIRE(big.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  v1::CreateProjectRequest huge;
  huge.set_name(std::string(5 << 20, 'n'));
  v1::CreateProjectResponse unused;
  REQUIRE(c.admin().Call(&v1::KeyAdmin::Stub::CreateProject, huge, &unused).error_code() ==
          grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Both still serve.
  REQUIRE(testing::Verdict(s.address(), p.legacy_api_key()) == v1::VALID);
  REQUIRE_NOTHROW(c.admin().CreateProject("still here"));
}

TEST_CASE("10,000 concurrent Validate calls all get answers and the sidecar keeps serving") {
  testing::Cluster c;
  SidecarServer& s = c.AddSidecar();
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  REQUIRE(c.AllCaughtUp());
  auto stub = v1::Validator::NewStub(testing::Channel(s.address()));
  constexpr int kCalls = 10000;
  struct Call {
    grpc::ClientContext ctx;
    v1::ValidateRequest req;
    v1::ValidateResponse resp;
  };
  std::vector<std::unique_ptr<Call>> calls(kCalls);
  std::atomic<int> done{0}, valid{0}, refused{0};
  for (auto& call : calls) {
    call = std::make_unique<Call>();
    call->req.set_key(p.legacy_api_key());
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    Call* raw = call.get();
    stub->async()->Validate(&raw->ctx, &raw->req, &raw->resp, [&, raw](grpc::Status st) {
      if (st.ok() && raw->resp.verdict() == v1::VALID) ++valid;
      if (!st.ok()) ++refused;
      ++done;
    });
  }
  REQUIRE(testing::Eventually([&] { return done == kCalls; }, std::chrono::seconds(60)));
  std::printf("10000 concurrent calls: %d VALID, %d refused with a status; peak RSS %ld KiB\n",
              valid.load(), refused.load(), PeakRssKiB());
  REQUIRE(valid + refused == kCalls);
  REQUIRE(valid > 0);
  REQUIRE(testing::Verdict(s.address(), p.legacy_api_key()) == v1::VALID);
}

TEST_CASE("a watcher that never reads is cut off while the others keep up") {
  AuthorityOptions options;
  options.watch_queue_limit = 500;
  testing::Cluster c(options);
  SidecarServer& healthy = c.AddSidecar();
  REQUIRE(c.AllCaughtUp());
  // The slow one: opens Watch with the sidecars' token and never reads.
  const std::string sidecar_token = c.admin().CreatePrincipal("slow", v1::ROLE_SIDECAR);
  // A small, fixed flow-control window: without it gRPC's window tuning lets
  // the client's transport buffer the whole backlog and the server never
  // sees a slow reader.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 4096);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub = v1::KeySync::NewStub(
      grpc::CreateCustomChannel(c.authority().address(), grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext slow_ctx;
  // Past the mutations below however slow the store (etcd under a loaded
  // machine once took over 60 s, and the stream ended by its deadline
  // instead of being cut off), inside ctest's timeout.
  slow_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(150));
  slow_ctx.AddMetadata("authorization", "Bearer " + sidecar_token);
  v1::WatchRequest wr;
  wr.set_sidecar_id("never-reads");
  auto slow = stub->Watch(&slow_ctx, wr);

  const long rss_before = PeakRssKiB();
  const std::string project = c.admin().CreateProject("busy").project().project_id();
  // 2,000 revisions: four times the watcher's queue limit.
  for (int i = 0; i < 1000; ++i) {
    const v1::GenerateApiKeyResponse k = c.admin().GenerateApiKey(project);
    REQUIRE(c.admin().Revoke(k.key().key_id()).ok());
  }
  // The healthy sidecar kept up the whole time.
  REQUIRE(c.AllCaughtUp());
  REQUIRE(healthy.sync_state().contract_violations == 0);
  // The slow one, reading at last, finds its stream ended with RESOURCE_EXHAUSTED.
  v1::WatchResponse msg;
  int read = 0;
  while (slow->Read(&msg)) ++read;
  const grpc::Status ended = slow->Finish();
  INFO(ended.error_message());
  REQUIRE(ended.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  REQUIRE(read < 2000);  // it never got the whole backlog queued for it
  std::printf("slow watcher cut off after %d messages; peak RSS grew %ld KiB over 2000 mutations\n",
              read, PeakRssKiB() - rss_before);
}

}  // namespace
}  // namespace latchkey
