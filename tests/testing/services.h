// The authority's gRPC services assembled by hand on port 0, without
// AuthorityServer, around a store that records which threads call it.
#ifndef LATCHKEY_TESTS_TESTING_SERVICES_H_
#define LATCHKEY_TESTS_TESTING_SERVICES_H_

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "authority/rpc/admin_service.h"
#include "authority/rpc/sync_service.h"
#include "common/files.h"
#include "common/grpc_server.h"
#include "common/work_queue.h"
#include "tests/testing/clients.h"
#include "tests/testing/test_store.h"
#include "tests/testing/thread_checking_store.h"

namespace latchkey::testing {

// The authority's services without AuthorityServer, so the store can be
// wrapped. Retention is small so that resumes can fall off the log.
class Services {
 public:
  explicit Services(uint64_t retention = 100000, SyncServiceOptions sync_options = {}) {
    store_ = OpenTestStore(dir_, retention);
    auto core = KeyAuthority::Create(store_.get(), *Sealer::LoadOrCreate(dir_ / "master.key"), {});
    REQUIRE(core.ok());
    core_ = *std::move(core);
    REQUIRE(*core_->BootstrapAdmin(dir_ / "admin.token"));
    hub_ = std::make_unique<EventHub>(store_->store_id(), absl::Milliseconds(50),
                                      [this] { return store_->head_revision(); });
    store_->SetCommitListener([this](const v1::KeyEvent& e, const v1::AuditEvent&, TableSet) {
      propagation_.Committed(e.revision(), absl::Now());
      hub_->Publish(e);
    });
    admin_service_ =
        std::make_unique<AdminService>(core_.get(), store_.get(), &propagation_, &work_);
    sync_service_ = std::make_unique<SyncService>(core_.get(), store_.get(), hub_.get(),
                                                  &propagation_, &work_, sync_options);
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
    hub_->CloseAll(absl::UnavailableError("test over"));
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
