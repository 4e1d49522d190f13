// The authority's gRPC services assembled by hand on port 0, without
// AuthorityServer, around a store that records which threads call it.
#ifndef LATCHKEY_TESTS_TESTING_SERVICES_H_
#define LATCHKEY_TESTS_TESTING_SERVICES_H_

#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "authority/admin_service.h"
#include "authority/rocksdb_store.h"
#include "authority/sync_service.h"
#include "common/files.h"
#include "common/grpc_server.h"
#include "common/work_queue.h"
#include "tests/testing/clients.h"

namespace latchkey::testing {

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
    admin_ = std::make_unique<Admin>(address_, *ReadTokenFile(dir_ / "admin.token"));
    sidecar_token_ = admin_->CreatePrincipal("sidecars", v1::ROLE_SIDECAR);
    sync_ = v1::KeySync::NewStub(Channel(address_));
    store_->Arm();
  }
  ~Services() {
    hub_->CloseAll();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
    store_->SetCommitListener(nullptr);
  }

  ThreadCheckingStore& store() { return *store_; }
  const std::string& address() const { return address_; }
  Admin& admin() { return *admin_; }
  v1::KeySync::Stub& sync() { return *sync_; }
  const std::string& sidecar_token() const { return sidecar_token_; }

 private:
  TempDir dir_;
  std::unique_ptr<ThreadCheckingStore> store_;
  std::unique_ptr<KeyAuthority> core_;
  PropagationTracker propagation_;
  std::unique_ptr<EventHub> hub_;
  WorkQueue work_{4};
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<SyncService> sync_service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::unique_ptr<Admin> admin_;
  std::string sidecar_token_;
  std::unique_ptr<v1::KeySync::Stub> sync_;
};

}  // namespace latchkey::testing

#endif  // LATCHKEY_TESTS_TESTING_SERVICES_H_
