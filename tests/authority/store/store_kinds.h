// The store kinds the store tests run against, and the helpers they share.
// A kind provides Open(retention): a store over the same data each time it
// is called, so a second Open after the first is closed is a reopen.
#ifndef LATCHKEY_TESTS_AUTHORITY_STORE_STORE_KINDS_H_
#define LATCHKEY_TESTS_AUTHORITY_STORE_STORE_KINDS_H_

#include <catch2/catch.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "authority/store/etcd/etcd_store.h"
#include "authority/store/key_store.h"
#include "authority/store/rocksdb/rocksdb_store.h"
#include "common/key_format.h"
#include "common/net.h"
#include "tests/testing/etcd_cluster.h"
#include "tests/testing/testing.h"
#include "tests/testing/thread_checking_store.h"

namespace latchkey::testing {

class RocksDbKind {
 public:
  std::unique_ptr<KeyStore> Open(uint64_t retention = 100000) {
    absl::StatusOr<std::unique_ptr<KeyStore>> store = OpenRocksDbStore({dir_.path(), retention});
    REQUIRE(store.ok());
    // Wrapped only so that ThreadSanitizer sees RocksDB's memtable ordering
    // (see ThreadCheckingStore); it changes no result.
    return std::make_unique<ThreadCheckingStore>(*std::move(store));
  }

 private:
  TempDir dir_;
};

// A store under its own prefix on the shared three-member etcd cluster.
class EtcdKind {
 public:
  std::unique_ptr<KeyStore> Open(uint64_t retention = 100000) {
    EtcdStoreOptions options;
    options.endpoints = *ParseEndpoints(EtcdCluster::Shared().endpoints());
    options.prefix = prefix_;
    options.event_retention = retention;
    absl::StatusOr<std::unique_ptr<KeyStore>> store = OpenEtcdStore(options);
    INFO(store.status());
    REQUIRE(store.ok());
    return *std::move(store);
  }

  const std::string& prefix() const { return prefix_; }

 private:
  const std::string prefix_ = "/conformance-" + RandomBase62(12) + "/";
};

inline Mutation Put(const std::string& key, const std::string& value) {
  Mutation m;
  m.writes.push_back(Write{Table::kProjects, key, value});
  m.audit.set_project_id("prj_x");
  m.audit.set_action("test");
  return m;
}

inline std::optional<std::string> Read(const KeyStore& store, const std::string& key,
                                       const StoreSnapshot* at = nullptr) {
  absl::StatusOr<std::optional<std::string>> row = store.Get(Table::kProjects, key, at);
  REQUIRE(row.ok());
  return *row;
}

// The kinds every TEMPLATE_TEST_CASE of the contract runs on, unqualified
// (they name the cases: "... - RocksDbKind"), so a test file says
// `using testing::RocksDbKind; using testing::EtcdKind;`. gRPC cannot run
// under our ThreadSanitizer build (Debian's Abseil is not instrumented; see
// scripts/test), so there the etcd store sits out.
#if defined(__SANITIZE_THREAD__)
#define STORE_KINDS RocksDbKind
#else
#define STORE_KINDS RocksDbKind, EtcdKind
#endif

// A replicated store reads usage from what its watch brought: a moment.
inline std::vector<UsageRow> UsageOnceItHas(const KeyStore& store, const std::string& key_id,
                                            size_t rows) {
  std::vector<UsageRow> got;
  Eventually([&] {
    got = *store.GetUsage(key_id);
    return got.size() == rows;
  });
  return got;
}

}  // namespace latchkey::testing

#endif  // LATCHKEY_TESTS_AUTHORITY_STORE_STORE_KINDS_H_
