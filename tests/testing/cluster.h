// An in-process authority and sidecars on loopback port 0, with a real
// store (tests/testing/test_store.h).
#ifndef LATCHKEY_TESTS_TESTING_CLUSTER_H_
#define LATCHKEY_TESTS_TESTING_CLUSTER_H_

#include <catch2/catch.hpp>

#include "authority/server.h"
#include "latchkey/v1/validator.grpc.pb.h"
#include "sidecar/server.h"
#include "tests/testing/clients.h"
#include "tests/testing/test_store.h"

namespace latchkey::testing {

inline v1::Verdict Verdict(const std::string& address, const std::string& key) {
  auto stub = v1::Validator::NewStub(Channel(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ValidateRequest req;
  req.set_key(key);
  v1::ValidateResponse resp;
  grpc::Status s = stub->Validate(&ctx, req, &resp);
  if (!s.ok()) return v1::VERDICT_UNSPECIFIED;
  return resp.verdict();
}

class Cluster {
 public:
  explicit Cluster(AuthorityOptions options = {}) { StartAuthority(std::move(options)); }

  void StartAuthority(AuthorityOptions options = {}) {
    if (options.listen.addresses == std::vector<std::string>{"127.0.0.1:7700"}) {
      options.listen.addresses = {"127.0.0.1:" + std::to_string(port_)};
    }
    UseTestStore(options, dir_, etcd_prefix_);
    options_ = options;
    if (options.progress_interval == absl::Seconds(1)) {
      options.progress_interval = absl::Milliseconds(100);
    }
    absl::StatusOr<std::unique_ptr<AuthorityServer>> started = AuthorityServer::Start(options);
    INFO(started.status());
    REQUIRE(started.ok());
    authority_ = *std::move(started);
    admin_ =
        std::make_unique<Admin>(authority_->address(), TokenFrom(authority_->admin_token_path()));
    if (sidecar_token_.empty()) {
      sidecar_token_ = admin_->CreatePrincipal("sidecars", v1::ROLE_SIDECAR);
    }
  }
  void StopAuthority() {
    admin_.reset();
    authority_.reset();
  }

  SidecarServer& AddSidecar(SidecarOptions options = {}) {
    options.listen.addresses = {"127.0.0.1:0"};
    options.authority = "127.0.0.1:" + std::to_string(port_);
    options.token = sidecar_token_;
    if (options.sidecar_id.empty()) {
      options.sidecar_id = "sidecar-" + std::to_string(sidecars_.size());
    }
    absl::StatusOr<std::unique_ptr<SidecarServer>> started = SidecarServer::Start(options);
    REQUIRE(started.ok());
    sidecars_.push_back(*std::move(started));
    return *sidecars_.back();
  }

  // Waits until every sidecar has applied the authority's head revision.
  bool AllCaughtUp(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return Eventually(
        [&] {
          const uint64_t head = authority_->store().head_revision();
          for (auto& s : sidecars_) {
            if (s && s->sync_state().applied != head) return false;
          }
          return true;
        },
        timeout);
  }

  AuthorityServer& authority() { return *authority_; }
  Admin& admin() { return *admin_; }
  std::vector<std::unique_ptr<SidecarServer>>& sidecars() { return sidecars_; }
  const TempDir& dir() const { return dir_; }
  // The authority's store opened directly (an embedded one while it is
  // stopped), and the master key it seals with.
  std::unique_ptr<KeyStore> OpenStore() const { return OpenStoreOf(options_); }
  std::string master_key_file() const {
    return options_.master_key_file.empty() ? options_.data_dir + "/master.key"
                                            : options_.master_key_file;
  }
  int port() const { return port_; }
  // The SIDECAR principal's token every AddSidecar uses.
  const std::string& sidecar_token() const { return sidecar_token_; }

 private:
  TempDir dir_;
  int port_ = PickFreePort();
  const std::string etcd_prefix_ = FreshEtcdPrefix();
  AuthorityOptions options_;  // of the last start  // with LATCHKEY_TEST_STORE=etcd
  std::unique_ptr<AuthorityServer> authority_;
  std::unique_ptr<Admin> admin_;
  std::string sidecar_token_;
  std::vector<std::unique_ptr<SidecarServer>> sidecars_;
};

}  // namespace latchkey::testing

#endif  // LATCHKEY_TESTS_TESTING_CLUSTER_H_
