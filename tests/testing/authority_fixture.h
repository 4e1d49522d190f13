// An in-process KeyAuthority over a real RocksDB store in a temp dir.
#ifndef LATCHKEY_TESTS_TESTING_AUTHORITY_FIXTURE_H_
#define LATCHKEY_TESTS_TESTING_AUTHORITY_FIXTURE_H_

#include <catch2/catch.hpp>

#include "authority/core/key_authority.h"
#include "tests/testing/test_store.h"
#include "tests/testing/testing.h"

namespace latchkey::testing {

class AuthorityFixture {
 public:
  explicit AuthorityFixture(KeyAuthorityOptions options = {}) {
    // Wrapped (see OpenTestStore) so that ThreadSanitizer sees RocksDB's
    // memtable ordering when two authorities share the store.
    store_ = OpenTestStore(dir_, 100000, &etcd_prefix_);
    absl::StatusOr<Sealer> sealer = Sealer::LoadOrCreate(dir_ / "master.key");
    REQUIRE(sealer.ok());
    absl::StatusOr<std::unique_ptr<KeyAuthority>> authority =
        KeyAuthority::Create(store_.get(), *sealer, options);
    REQUIRE(authority.ok());
    authority_ = *std::move(authority);
    REQUIRE(*authority_->BootstrapAdmin(dir_ / "admin.token"));
    admin_ = Caller{"prn_admin", "admin", v1::ROLE_ADMIN};
    manager_ = Caller{"prn_manager", "maria", v1::ROLE_MANAGER};
    member_ = Caller{"prn_member", "mo", v1::ROLE_MEMBER};
  }

  KeyAuthority& authority() { return *authority_; }

  // Another authority over the same store and master key, as a replica
  // sharing a replicated store would be: it shares nothing in memory with
  // authority(), so only the store's transactions keep the two consistent.
  std::unique_ptr<KeyAuthority> Replica(KeyAuthorityOptions options = {}) {
    absl::StatusOr<Sealer> sealer = Sealer::LoadOrCreate(dir_ / "master.key");
    REQUIRE(sealer.ok());
    absl::StatusOr<std::unique_ptr<KeyAuthority>> replica =
        KeyAuthority::Create(store_.get(), *sealer, options);
    REQUIRE(replica.ok());
    return *std::move(replica);
  }
  ThreadCheckingStore& store() { return *store_; }
  const TempDir& dir() const { return dir_; }
  // Files in dir() and (on etcd) keys of the store that hold `needle`.
  std::vector<std::string> StoredCopiesOf(const std::string& needle) const {
    return StoredCopies(dir_.path(), etcd_prefix_, needle);
  }
  const Caller& admin() const { return admin_; }
  const Caller& manager() const { return manager_; }
  const Caller& member() const { return member_; }

  v1::CreateProjectResponse CreateProject(const std::string& name = "Web shop") {
    v1::CreateProjectRequest req;
    req.set_name(name);
    absl::StatusOr<v1::CreateProjectResponse> resp = authority_->CreateProject(manager_, req);
    REQUIRE(resp.ok());
    return *resp;
  }

  absl::StatusOr<v1::GenerateApiKeyResponse> GenerateApiKey(const std::string& project_id,
                                                            const std::string& name = "ingest") {
    v1::GenerateApiKeyRequest req;
    req.set_project_id(project_id);
    req.set_name(name);
    return authority_->GenerateApiKey(manager_, req);
  }

  absl::StatusOr<v1::GenerateSecretKeyResponse> GenerateSecretKey(
      const std::string& project_id, const std::string& name = "backend") {
    v1::GenerateSecretKeyRequest req;
    req.set_project_id(project_id);
    req.set_name(name);
    return authority_->GenerateSecretKey(manager_, req);
  }

  v1::Key GetKey(const std::string& key_id) {
    v1::GetKeyRequest req;
    req.set_key_id(key_id);
    absl::StatusOr<v1::Key> key = authority_->GetKey(member_, req);
    REQUIRE(key.ok());
    return *key;
  }

  std::vector<v1::Key> ListKeys(const std::string& project_id) {
    v1::ListKeysRequest req;
    req.set_project_id(project_id);
    req.set_page_size(1000);
    absl::StatusOr<v1::ListKeysResponse> resp = authority_->ListKeys(member_, req);
    REQUIRE(resp.ok());
    return {resp->keys().begin(), resp->keys().end()};
  }

  std::vector<v1::AuditEvent> Audit(const std::string& project_id) {
    v1::ListAuditEventsRequest req;
    req.set_project_id(project_id);
    req.set_page_size(1000);
    absl::StatusOr<v1::ListAuditEventsResponse> resp = authority_->ListAuditEvents(member_, req);
    REQUIRE(resp.ok());
    return {resp->events().begin(), resp->events().end()};
  }

 private:
  TempDir dir_;
  std::unique_ptr<ThreadCheckingStore> store_;
  std::string etcd_prefix_;  // on etcd
  std::unique_ptr<KeyAuthority> authority_;
  Caller admin_, manager_, member_;
};

}  // namespace latchkey::testing

#endif  // LATCHKEY_TESTS_TESTING_AUTHORITY_FIXTURE_H_
