// The store the authority's tests run on. By default the embedded RocksDB
// store; with LATCHKEY_TEST_STORE=etcd, a store under a fresh prefix of the
// shared three-member etcd cluster (tests/testing/etcd_cluster.h). ctest runs
// the authority tests both ways (tests/CMakeLists.txt, label `etcd`), so
// every rule is checked on both stores (docs/design.md, "The store contract").
#ifndef LATCHKEY_TESTS_TESTING_TEST_STORE_H_
#define LATCHKEY_TESTS_TESTING_TEST_STORE_H_

#include <openssl/rand.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "authority/server.h"
#include "authority/store/etcd/etcd_store.h"
#include "authority/store/rocksdb/rocksdb_store.h"
#include "common/files.h"
#include "common/key_format.h"
#include "common/net.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "tests/testing/etcd_cluster.h"
#include "tests/testing/testing.h"
#include "tests/testing/thread_checking_store.h"

namespace latchkey::testing {

inline bool TestOnEtcd() {
  const char* store = std::getenv("LATCHKEY_TEST_STORE");
  return store != nullptr && std::string(store) == "etcd";
}

// A prefix no other test uses.
inline std::string FreshEtcdPrefix() { return "/test-" + RandomBase62(12) + "/"; }

// A new, empty store (wrapped to record which threads call it); on etcd,
// its prefix goes to `etcd_prefix` when given.
inline std::unique_ptr<ThreadCheckingStore> OpenTestStore(const TempDir& dir,
                                                          uint64_t retention = 100000,
                                                          std::string* etcd_prefix = nullptr) {
  absl::StatusOr<std::unique_ptr<KeyStore>> store;
  if (TestOnEtcd()) {
    EtcdStoreOptions options;
    options.endpoints = *ParseEndpoints(EtcdCluster::Shared().endpoints());
    options.prefix = FreshEtcdPrefix();
    if (etcd_prefix != nullptr) *etcd_prefix = options.prefix;
    options.event_retention = retention;
    store = OpenEtcdStore(options);
  } else {
    store = OpenRocksDbStore({dir / "db", retention});
  }
  INFO(store.status());
  REQUIRE(store.ok());
  return std::make_unique<ThreadCheckingStore>(*std::move(store));
}

// Points an AuthorityServer's options at the test store: a data dir in `dir`,
// or `prefix` on the shared etcd cluster with a master key and a bootstrap
// token kept in `dir` (made on first use, so a restart finds them).
inline void UseTestStore(AuthorityOptions& options, const TempDir& dir, const std::string& prefix) {
  options.data_dir = dir / "authority";
  if (!TestOnEtcd()) return;
  options.store = "etcd";
  options.etcd.endpoints = *ParseEndpoints(EtcdCluster::Shared().endpoints());
  options.etcd.prefix = prefix;
  options.master_key_file = dir / "master.key";
  options.bootstrap_token_file = dir / "bootstrap.token";
  if (absl::StatusOr<std::string> existing = ReadPrivateFile(options.master_key_file);
      !existing.ok() || existing->empty()) {
    std::string key(32, '\0');
    RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size()));
    REQUIRE(WritePrivateFile(options.master_key_file, key).ok());
    REQUIRE(WritePrivateFile(options.bootstrap_token_file, GenerateToken() + "\n").ok());
  }
}

// The store an AuthorityServer started with `options` uses, opened directly
// (an embedded one only while that server is stopped).
inline std::unique_ptr<KeyStore> OpenStoreOf(const AuthorityOptions& options) {
  absl::StatusOr<std::unique_ptr<KeyStore>> store;
  if (options.store == "etcd") {
    EtcdStoreOptions etcd = options.etcd;
    etcd.event_retention = options.event_retention;
    store = OpenEtcdStore(etcd);
  } else {
    store = OpenRocksDbStore({options.data_dir + "/db", options.event_retention});
  }
  INFO(store.status());
  REQUIRE(store.ok());
  return *std::move(store);
}

// Where `needle` is stored: files under `dir` holding it, and on etcd the
// keys under `etcd_prefix` whose name or value holds it.
inline std::vector<std::string> StoredCopies(const std::string& dir, const std::string& etcd_prefix,
                                             const std::string& needle) {
  std::vector<std::string> found = FilesContaining(dir, needle);
  if (etcd_prefix.empty()) return found;
  auto kv = etcdserverpb::KV::NewStub(
      grpc::CreateChannel(EtcdCluster::Shared().endpoint(0), grpc::InsecureChannelCredentials()));
  etcdserverpb::RangeRequest req;
  req.set_key(etcd_prefix);
  std::string end = etcd_prefix;
  end.back() = static_cast<char>(end.back() + 1);
  req.set_range_end(end);
  etcdserverpb::RangeResponse resp;
  grpc::ClientContext ctx;
  REQUIRE(kv->Range(&ctx, req, &resp).ok());
  for (const auto& item : resp.kvs()) {
    if (item.key().find(needle) != std::string::npos ||
        item.value().find(needle) != std::string::npos) {
      found.push_back(item.key());
    }
  }
  return found;
}

}  // namespace latchkey::testing

#endif  // LATCHKEY_TESTS_TESTING_TEST_STORE_H_
