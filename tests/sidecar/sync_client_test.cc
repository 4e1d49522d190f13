// The sync client against scripted authorities: one that breaks the watch
// contract (what the client asks for next, and how soon), and one that
// records what the client sends back on its stream.
#include "sidecar/sync_client.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "common/key_format.h"
#include "common/mutex.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

// Every stream: a snapshot at revision 5, then an event at revision 7 (a
// gap), then silence until the client hangs up.
class GappyAuthority final : public v1::KeySync::Service {
 public:
  grpc::Status Sync(grpc::ServerContext* ctx,
                    grpc::ServerReaderWriter<v1::WatchResponse, v1::SyncRequest>* stream) override {
    v1::SyncRequest first;
    if (!stream->Read(&first)) return grpc::Status::CANCELLED;
    {
      MutexLock lock(&mu_);
      requests_.push_back(first.watch());
    }
    v1::WatchResponse m;
    m.set_store_id("st_gappy");
    m.mutable_snapshot_chunk();
    stream->Write(m);
    m.mutable_snapshot_end()->set_revision(5);
    stream->Write(m);
    m.mutable_event()->set_revision(7);
    stream->Write(m);
    while (!ctx->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
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

// A scripted authority served on a loopback port of its own.
struct Served {
  explicit Served(grpc::Service* authority) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(authority);
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
  }
  // What a client named sc-test is started with.
  SyncOptions Options() const {
    SyncOptions options;
    options.channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                          grpc::InsecureChannelCredentials());
    options.sidecar_id = "sc-test";
    return options;
  }

  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

TEST_CASE("after a contract violation the sidecar resyncs by snapshot, backing off") {
  GappyAuthority authority;
  Served served(&authority);
  KeySet keys;
  SyncOptions options = served.Options();
  options.min_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(200);
  SyncClient client(options, &keys);
  client.Start();
  REQUIRE(testing::Eventually([&] { return client.state().contract_violations >= 4; }));
  const SyncClient::State state = client.state();
  client.Stop();
  served.server->Shutdown();

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

// One stream: a snapshot at revision 5, then `progress_ticks` progress
// messages 5 ms apart, then events 6..`last_event` at once; then it records
// every message the client sends until the client closes its side.
class RecordingAuthority final : public v1::KeySync::Service {
 public:
  int progress_ticks = 40;
  uint64_t last_event = 200;

  grpc::Status Sync(grpc::ServerContext*,
                    grpc::ServerReaderWriter<v1::WatchResponse, v1::SyncRequest>* stream) override {
    v1::SyncRequest in;
    if (!stream->Read(&in)) return grpc::Status::CANCELLED;
    std::thread reader([&] {
      v1::SyncRequest ack;
      while (stream->Read(&ack)) {
        MutexLock lock(&mu_);
        received_.push_back(ack.acknowledgement());
      }
      MutexLock lock(&mu_);
      closed_ = true;
    });
    v1::WatchResponse m;
    m.set_store_id("st_rec");
    m.set_session("ses_rec");
    m.mutable_snapshot_end()->set_revision(5);
    stream->Write(m);
    m.clear_session();
    for (int i = 0; i < progress_ticks; ++i) {
      m.mutable_progress()->set_head_revision(5);
      stream->Write(m);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    {
      MutexLock lock(&mu_);
      at_rest_ = received_.size();
    }
    for (uint64_t r = 6; r <= last_event; ++r) {
      m.mutable_event()->set_revision(r);
      stream->Write(m);
    }
    reader.join();  // until the client closes its side
    return grpc::Status::OK;
  }

  std::vector<v1::SyncAcknowledgement> received() {
    MutexLock lock(&mu_);
    return received_;
  }
  // Acknowledgements received before the first event.
  size_t at_rest() {
    MutexLock lock(&mu_);
    return at_rest_;
  }
  bool closed() {
    MutexLock lock(&mu_);
    return closed_;
  }

 private:
  Mutex mu_;
  std::vector<v1::SyncAcknowledgement> received_ ABSL_GUARDED_BY(mu_);
  size_t at_rest_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

TEST_CASE("the client acknowledges on its stream: each new revision once, the newest, then bye") {
  RecordingAuthority authority;
  Served served(&authority);
  KeySet keys;
  SyncOptions options = served.Options();
  SyncClient client(options, &keys);
  client.Start();
  REQUIRE(testing::Eventually([&] { return client.state().applied == authority.last_event; }));
  REQUIRE(testing::Eventually([&] {
    const std::vector<v1::SyncAcknowledgement> got = authority.received();
    return !got.empty() && got.back().applied_revision() == authority.last_event;
  }));
  client.Stop();
  served.server->Shutdown();

  CHECK(authority.closed());  // Stop closed the client's side
  const std::vector<v1::SyncAcknowledgement> got = authority.received();
  // At rest: the snapshot's revision once, and nothing for 40 progress messages.
  CHECK(authority.at_rest() <= 1);
  REQUIRE(got.size() >= 3);
  CHECK(got.front().applied_revision() == 5);
  CHECK(got.front().store_id() == "st_rec");
  for (size_t i = 1; i + 1 < got.size(); ++i) {
    INFO("acknowledgement " << i);
    REQUIRE(got[i].applied_revision() > got[i - 1].applied_revision());  // never twice
    REQUIRE_FALSE(got[i].leaving());
  }
  // The last is the goodbye.
  CHECK(got.back().leaving());
  CHECK(got[got.size() - 2].applied_revision() == authority.last_event);
}

TEST_CASE("events are applied in order on gRPC's thread, snapshots on the client's own") {
  RecordingAuthority authority;
  Served served(&authority);
  struct Applied {
    uint64_t revision;
    bool snapshot;
    std::thread::id thread;
  };
  Mutex mu;
  std::vector<Applied> applied;
  KeySet keys;
  SyncOptions options = served.Options();
  options.on_applied = [&](uint64_t revision, bool snapshot) {
    MutexLock lock(&mu);
    applied.push_back({revision, snapshot, std::this_thread::get_id()});
  };
  SyncClient client(options, &keys);
  client.Start();
  REQUIRE(testing::Eventually([&] { return client.state().applied == authority.last_event; }));
  client.Stop();

  MutexLock lock(&mu);
  REQUIRE(applied.size() == authority.last_event - 4);  // the snapshot at 5, then 6..last
  REQUIRE(applied.front().snapshot);
  const std::thread::id reader = applied.front().thread;
  CHECK(reader != std::this_thread::get_id());
  for (size_t i = 1; i < applied.size(); ++i) {
    INFO("applied " << i);
    REQUIRE_FALSE(applied[i].snapshot);
    REQUIRE(applied[i].revision == applied[i - 1].revision + 1);
    // Where gRPC delivered it: the reader thread is not woken per revision.
    REQUIRE(applied[i].thread != reader);
  }
}

// One stream: a snapshot of kKeys keys in chunks of 1,000, then silence
// until the client hangs up.
class SnapshotAuthority final : public v1::KeySync::Service {
 public:
  static constexpr int kKeys = 50000;
  std::string first_value;  // the first key's value

  SnapshotAuthority() {
    for (int i = 0; i < kKeys; ++i) {
      const std::string value = GenerateKey(v1::API_KEY);
      if (i == 0) first_value = value;
      v1::KeyEntry& e = *(i % 1000 == 0 ? chunks_.emplace_back() : chunks_.back())
                             .mutable_snapshot_chunk()
                             ->add_entries();
      e.set_digest(Sha256Bytes(value));
      e.set_key_id(GenerateKeyId());
      e.set_project_id(GenerateProjectId());
      e.set_kind(v1::API_KEY);
      e.set_state(v1::KEY_STATE_ACTIVE);
    }
  }

  grpc::Status Sync(grpc::ServerContext* ctx,
                    grpc::ServerReaderWriter<v1::WatchResponse, v1::SyncRequest>* stream) override {
    v1::SyncRequest first;
    if (!stream->Read(&first)) return grpc::Status::CANCELLED;
    for (v1::WatchResponse m : chunks_) {
      m.set_store_id("st_snap");
      stream->Write(m);
    }
    v1::WatchResponse end;
    end.set_store_id("st_snap");
    end.mutable_snapshot_end()->set_revision(9);
    stream->Write(end);
    while (!ctx->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return grpc::Status::OK;
  }

 private:
  std::vector<v1::WatchResponse> chunks_;
};

TEST_CASE("once the snapshot's keys are served, the client's state says it was loaded") {
  SnapshotAuthority authority;
  Served served(&authority);
  KeySet keys;
  SyncClient client(served.Options(), &keys);
  // Watches from the first moment the key set answers for the snapshot's
  // keys: what health and metrics read must already agree with it.
  std::optional<SyncClient::State> seen;
  std::thread watcher([&] {
    const absl::Time give_up = absl::Now() + absl::Seconds(60);
    while (absl::Now() < give_up) {
      if (keys.Validate(authority.first_value).verdict == v1::VALID) {
        seen = client.state();
        return;
      }
    }
  });
  client.Start();
  watcher.join();
  client.Stop();
  served.server->Shutdown();

  REQUIRE(seen.has_value());
  CHECK(seen->synced);
  CHECK(seen->snapshots == 1);
  CHECK(seen->applied == 9);
  CHECK(seen->store_id == "st_snap");
}

}  // namespace
}  // namespace latchkey
