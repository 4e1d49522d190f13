#include "bench/sync_floor.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <list>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/grpc_server.h"
#include "common/memory_release.h"
#include "latchkey/v1/key_admin.grpc.pb.h"
#include "latchkey/v1/key_sync.grpc.pb.h"

namespace latchkey::bench {
namespace {

using Bytes = std::shared_ptr<const grpc::ByteBuffer>;

constexpr char kStoreId[] = "floor";

// `message` encoded once.
Bytes Encode(const v1::WatchResponse& message) {
  auto bytes = std::make_shared<grpc::ByteBuffer>();
  bool own = false;
  if (!grpc::SerializationTraits<v1::WatchResponse>::Serialize(message, bytes.get(), &own).ok()) {
    std::abort();  // a message built here always serializes
  }
  return bytes;
}

class FloorStream;

// The streams open and the revision they have all been sent. Safe for
// concurrent use from multiple threads.
class Fanout {
 public:
  // Adds `stream`, sending it the end of an empty snapshot at the current
  // revision first, so that it misses no event after it.
  void Join(FloorStream* stream);
  void Leave(FloorStream* stream);
  // A new revision: one event, encoded once, written to every stream.
  uint64_t Publish(const std::string& key_id);
  // Joins, leaves and revisions so far (EventHub::changes).
  uint64_t changes() const { return changes_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> changes_{0};
  std::mutex mu_;
  uint64_t revision_ = 1;
  std::set<FloorStream*> streams_;
};

// One Sync call: writes what the fanout sends in order, one at a time;
// reads the acknowledgements and drops them unparsed.
class FloorStream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit FloorStream(Fanout* fanout) : fanout_(fanout) { StartRead(&incoming_); }

  // Queues `bytes` behind any write in flight. Called under the fanout's
  // lock, so every stream sees revisions in order.
  void Send(Bytes bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ending_) return;
    queue_.push_back(std::move(bytes));
    if (queue_.size() == 1) StartWrite(queue_.front().get());
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client closed its side or went away: end once no write is in
      // flight.
      std::lock_guard<std::mutex> lock(mu_);
      ending_ = true;
      MaybeFinish();
      return;
    }
    incoming_.Clear();  // as the authority does: an idle stream keeps no message
    if (!joined_) {
      joined_ = true;
      fanout_->Join(this);
    }
    StartRead(&incoming_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.pop_front();
    if (!ok) {
      ending_ = true;
      queue_.clear();
    }
    if (!queue_.empty()) {
      StartWrite(queue_.front().get());
    } else {
      MaybeFinish();
    }
  }

  void OnDone() override {
    if (joined_) fanout_->Leave(this);
    delete this;
  }

 private:
  // Under mu_.
  void MaybeFinish() {
    if (!ending_ || !queue_.empty() || finished_) return;
    finished_ = true;
    Finish(grpc::Status::OK);
  }

  Fanout* const fanout_;
  grpc::ByteBuffer incoming_;  // gRPC's between StartRead and OnReadDone
  bool joined_ = false;        // only OnReadDone sets it, and OnDone comes after

  std::mutex mu_;
  // The front is being written. A list, as the authority's: an empty
  // std::deque holds a 512-byte block.
  std::list<Bytes> queue_;
  bool ending_ = false;  // nothing more is sent; Finish once queue_ drains
  bool finished_ = false;
};

void Fanout::Join(FloorStream* stream) {
  std::lock_guard<std::mutex> lock(mu_);
  v1::WatchResponse end;
  end.set_store_id(kStoreId);
  end.mutable_snapshot_end()->set_revision(revision_);
  stream->Send(Encode(end));
  streams_.insert(stream);
  changes_.fetch_add(1, std::memory_order_relaxed);
}

void Fanout::Leave(FloorStream* stream) {
  std::lock_guard<std::mutex> lock(mu_);
  streams_.erase(stream);
  changes_.fetch_add(1, std::memory_order_relaxed);
}

uint64_t Fanout::Publish(const std::string& key_id) {
  std::lock_guard<std::mutex> lock(mu_);
  // The shape of a real revocation's event: one key entry, revoked.
  v1::WatchResponse event;
  event.set_store_id(kStoreId);
  v1::KeyEvent& e = *event.mutable_event();
  e.set_revision(++revision_);
  v1::KeyEntry& entry = *e.add_upserts();
  entry.set_digest(std::string(32, 'd'));
  entry.set_key_id(key_id);
  entry.set_project_id("floor-project");
  entry.set_kind(v1::API_KEY);
  entry.set_state(v1::KEY_STATE_REVOKED);
  const Bytes bytes = Encode(event);
  for (FloorStream* s : streams_) s->Send(bytes);
  changes_.fetch_add(1, std::memory_order_relaxed);
  return revision_;
}

class FloorSync final : public v1::KeySync::WithRawCallbackMethod_Sync<v1::KeySync::Service> {
 public:
  explicit FloorSync(Fanout* fanout) : fanout_(fanout) {}
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Sync(
      grpc::CallbackServerContext*) override {
    return new FloorStream(fanout_);
  }

 private:
  Fanout* const fanout_;
};

class FloorAdmin final
    : public v1::KeyAdmin::WithCallbackMethod_RevokeApiKey<v1::KeyAdmin::Service> {
 public:
  explicit FloorAdmin(Fanout* fanout) : fanout_(fanout) {}
  grpc::ServerUnaryReactor* RevokeApiKey(grpc::CallbackServerContext* ctx,
                                         const v1::RevokeApiKeyRequest* req,
                                         v1::Key* key) override {
    key->set_key_id(req->key_id());
    key->set_revision(fanout_->Publish(req->key_id()));
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  Fanout* const fanout_;
};

}  // namespace

int SyncFloor(const std::string& address, bool memory_release) {
  Fanout fanout;
  const MemoryRelease release(memory_release ? absl::Seconds(1) : absl::ZeroDuration(),
                              [&fanout] { return fanout.changes(); });
  FloorSync sync(&fanout);
  FloorAdmin admin(&fanout);
  // The authority's listener settings (streams per connection, message
  // limits), so that only what is served differs.
  const ListenOptions listen({address});
  EnableServerPlugins();
  grpc::ServerBuilder builder;
  std::vector<int> ports;
  builder.RegisterService(&sync);
  builder.RegisterService(&admin);
  absl::StatusOr<std::unique_ptr<grpc::Server>> server;
  if (absl::Status s = AddListeners(builder, listen, ports); !s.ok()) {
    server = s;
  } else {
    server = StartServer(builder, listen, ports);
  }
  if (!server.ok()) {
    std::fprintf(stderr, "sync-floor: %s\n", server.status().ToString().c_str());
    return 1;
  }
  (*server)->Wait();
  return 0;
}

}  // namespace latchkey::bench
