// KeySync and KeyAdmin over real gRPC on port 0, assembled by hand around a
// store that records which threads call it: no store call runs on a gRPC
// callback thread, and the watch stream's phases (snapshot, replay, live)
// hand over without a gap or a duplicate.
#include "authority/sync_service.h"

#include <atomic>
#include <catch2/catch.hpp>

#include "authority/admin_service.h"
#include "authority/rocksdb_store.h"
#include "common/files.h"
#include "common/grpc_server.h"
#include "common/work_queue.h"
#include "tests/testing/clients.h"

namespace latchkey {
namespace {

// Forwards to a real store and counts calls made off the work queue's
// threads once armed (startup runs on the test's own thread).
class ThreadCheckingStore final : public KeyStore {
 public:
  explicit ThreadCheckingStore(std::unique_ptr<KeyStore> inner) : inner_(std::move(inner)) {}

  void Arm() { armed_ = true; }
  int off_worker_calls() const { return off_worker_.load(); }
  int calls() const { return calls_.load(); }

  const std::string& store_id() const override { return inner_->store_id(); }
  uint64_t head_revision() const override { return inner_->head_revision(); }
  uint64_t last_appended_revision() const override { return inner_->last_appended_revision(); }
  absl::StatusOr<uint64_t> Append(Mutation m) override {
    Note();
    return inner_->Append(std::move(m));
  }
  absl::Status Sync(uint64_t revision) override {
    Note();
    return inner_->Sync(revision);
  }
  absl::Status WriteAdvisory(std::vector<Write> writes) override {
    Note();
    return inner_->WriteAdvisory(std::move(writes));
  }
  StoreStats stats() const override { return inner_->stats(); }
  absl::StatusOr<std::optional<std::string>> Get(Table table, std::string_view key,
                                                 const StoreSnapshot* at) const override {
    Note();
    return inner_->Get(table, key, at);
  }
  absl::StatusOr<Page> Scan(Table table, std::string_view prefix, std::string_view after,
                            size_t limit, const StoreSnapshot* at) const override {
    Note();
    return inner_->Scan(table, prefix, after, limit, at);
  }
  absl::StatusOr<std::vector<v1::KeyEvent>> EventsAfter(uint64_t after,
                                                        size_t limit) const override {
    Note();
    return inner_->EventsAfter(after, limit);
  }
  absl::StatusOr<std::vector<v1::AuditEvent>> AuditEvents(std::string_view project_id,
                                                          uint64_t after,
                                                          size_t limit) const override {
    Note();
    return inner_->AuditEvents(project_id, after, limit);
  }
  std::unique_ptr<StoreSnapshot> Snapshot() override {
    Note();
    return inner_->Snapshot();
  }
  void SetCommitListener(CommitListener listener) override {
    inner_->SetCommitListener(std::move(listener));
  }

 private:
  void Note() const {
    if (!armed_) return;
    calls_.fetch_add(1);
    if (!WorkQueue::OnWorkerThread()) off_worker_.fetch_add(1);
  }

  const std::unique_ptr<KeyStore> inner_;
  std::atomic<bool> armed_{false};
  mutable std::atomic<int> calls_{0};
  mutable std::atomic<int> off_worker_{0};
};

// The authority's services without AuthorityServer, so the store can be
// wrapped. Retention is small so that resumes can fall off the log.
class Services {
 public:
  explicit Services(uint64_t retention = 100000) {
    auto rocks = OpenRocksDbStore({dir_ / "db", retention});
    REQUIRE(rocks.ok());
    store_ = std::make_unique<ThreadCheckingStore>(*std::move(rocks));
    auto core = KeyAuthority::Create(store_.get(), *Sealer::LoadOrCreate(dir_ / "master.key"), {});
    REQUIRE(core.ok());
    core_ = *std::move(core);
    REQUIRE(*core_->BootstrapAdmin(dir_ / "admin.token"));
    hub_ = std::make_unique<EventHub>(store_->store_id(), absl::Milliseconds(50),
                                      [this] { return store_->head_revision(); });
    store_->SetCommitListener([this](const v1::KeyEvent& e, const v1::AuditEvent&) {
      propagation_.Committed(e.revision(), absl::Now());
      hub_->Publish(e);
    });
    admin_service_ = std::make_unique<AdminService>(core_.get(), &propagation_, &work_);
    sync_service_ = std::make_unique<SyncService>(core_.get(), hub_.get(), &propagation_, &work_,
                                                  SyncServiceOptions{});
    EnableServerPlugins();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(admin_service_.get());
    builder.RegisterService(sync_service_.get());
    server_ = builder.BuildAndStart();
    REQUIRE(server_ != nullptr);
    address_ = "127.0.0.1:" + std::to_string(port);
    admin_ = std::make_unique<testing::Admin>(address_, *ReadTokenFile(dir_ / "admin.token"));
    sidecar_token_ = admin_->CreatePrincipal("sidecars", v1::ROLE_SIDECAR);
    sync_ = v1::KeySync::NewStub(testing::Channel(address_));
    store_->Arm();
  }
  ~Services() {
    hub_->CloseAll();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
    store_->SetCommitListener(nullptr);
  }

  ThreadCheckingStore& store() { return *store_; }
  testing::Admin& admin() { return *admin_; }
  v1::KeySync::Stub& sync() { return *sync_; }
  const std::string& sidecar_token() const { return sidecar_token_; }

 private:
  testing::TempDir dir_;
  std::unique_ptr<ThreadCheckingStore> store_;
  std::unique_ptr<KeyAuthority> core_;
  PropagationTracker propagation_;
  std::unique_ptr<EventHub> hub_;
  WorkQueue work_{4};
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<SyncService> sync_service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::unique_ptr<testing::Admin> admin_;
  std::string sidecar_token_;
  std::unique_ptr<v1::KeySync::Stub> sync_;
};

// One watch stream, read message by message.
class Watcher {
 public:
  Watcher(Services& s, uint64_t after_revision = 0, const std::string& store_id = "") {
    ctx_.AddMetadata("authorization", "Bearer " + s.sidecar_token());
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::WatchRequest req;
    req.set_sidecar_id("sc-test");
    req.set_after_revision(after_revision);
    req.set_store_id(store_id);
    reader_ = s.sync().Watch(&ctx_, req);
  }
  ~Watcher() {
    ctx_.TryCancel();
    v1::WatchResponse ignored;
    while (reader_->Read(&ignored)) {
    }
    reader_->Finish().ok();
  }

  // The next message that is not a progress tick.
  v1::WatchResponse Next() {
    v1::WatchResponse m;
    do {
      REQUIRE(reader_->Read(&m));
    } while (m.has_progress());
    return m;
  }
  // Reads through the snapshot; returns its revision and counts its entries.
  uint64_t ReadSnapshot(size_t* entries = nullptr) {
    for (;;) {
      v1::WatchResponse m = Next();
      if (m.has_snapshot_end()) return m.snapshot_end().revision();
      REQUIRE(m.has_snapshot_chunk());
      if (entries) *entries += m.snapshot_chunk().entries_size();
    }
  }
  grpc::Status Finish() {
    v1::WatchResponse ignored;
    while (reader_->Read(&ignored)) {
    }
    return reader_->Finish();
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::WatchResponse>> reader_;
};

TEST_CASE("no store call runs on a gRPC callback thread: admin calls, snapshots, replays, usage") {
  Services s;
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  const std::string key_id = s.admin().GenerateApiKey(project).key().key_id();
  {
    Watcher w(s);
    const uint64_t at = w.ReadSnapshot();
    s.admin().GenerateApiKey(project, "second");
    REQUIRE(w.Next().event().revision() == at + 1);
  }
  {
    Watcher replay(s, 1);
    REQUIRE(replay.Next().event().revision() == 2);
  }
  v1::ReportUsageRequest usage;
  usage.set_sidecar_id("sc-test");
  v1::KeyUsage* u = usage.add_usage();
  u->set_key_id(key_id);
  u->set_count(3);
  v1::ReportUsageResponse ignored;
  REQUIRE(
      s.sync().ReportUsage(testing::AuthContext(s.sidecar_token()).get(), usage, &ignored).ok());

  REQUIRE(s.store().calls() > 0);
  REQUIRE(s.store().off_worker_calls() == 0);
}

TEST_CASE("events committed while a snapshot is read arrive once, in order, after it") {
  Services s;
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  for (int i = 0; i < 30; ++i) s.admin().GenerateApiKey(project, "k" + std::to_string(i));
  Watcher w(s);
  std::thread writer([&] {
    for (int i = 0; i < 10; ++i) s.admin().GenerateApiKey(project, "during" + std::to_string(i));
  });
  size_t entries = 0;
  uint64_t last = w.ReadSnapshot(&entries);
  writer.join();
  REQUIRE(entries >= 31);  // the legacy key and the 30, at least
  const uint64_t head = s.store().head_revision();
  while (last < head) {
    const uint64_t next = w.Next().event().revision();
    REQUIRE(next == last + 1);
    last = next;
  }
}

TEST_CASE("a resume replays retained events and a trimmed one starts over with a snapshot") {
  Services s(/*retention=*/5);
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  for (int i = 0; i < 10; ++i) s.admin().GenerateApiKey(project, "k" + std::to_string(i));
  const uint64_t head = s.store().head_revision();
  {
    Watcher recent(s, head - 2);
    REQUIRE(recent.Next().event().revision() == head - 1);
    REQUIRE(recent.Next().event().revision() == head);
  }
  {
    Watcher trimmed(s, 1);
    REQUIRE(trimmed.ReadSnapshot() == head);
  }
  {
    // Another store's revisions mean nothing here: a snapshot.
    Watcher foreign(s, head - 1, "st_other");
    REQUIRE(foreign.ReadSnapshot() == head);
  }
}

TEST_CASE("watch calls without a sidecar token, or with a too-long id, are refused") {
  Services s;
  auto refused = [&](const std::string& token, const std::string& sidecar_id) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::WatchRequest req;
    req.set_sidecar_id(sidecar_id);
    auto reader = s.sync().Watch(&ctx, req);
    v1::WatchResponse m;
    REQUIRE(!reader->Read(&m));
    return reader->Finish().error_code();
  };
  REQUIRE(refused("", "sc") == grpc::StatusCode::UNAUTHENTICATED);
  REQUIRE(refused(s.admin().CreatePrincipal("viewer", v1::ROLE_MEMBER), "sc") ==
          grpc::StatusCode::PERMISSION_DENIED);
  REQUIRE(refused(s.sidecar_token(), std::string(129, 'x')) == grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace latchkey
