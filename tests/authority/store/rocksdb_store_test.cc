// What only the embedded RocksDB store does; the contract every store keeps
// is tested in store_conformance_test.cc.
#include "authority/store/rocksdb/rocksdb_store.h"

#include <rocksdb/db.h>

#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <thread>

#include "authority/store/key_store.h"
#include "tests/authority/store/store_kinds.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

using testing::Put;

std::unique_ptr<KeyStore> Open(const std::string& path, uint64_t retention = 100000) {
  absl::StatusOr<std::unique_ptr<KeyStore>> store = OpenRocksDbStore({path, retention});
  REQUIRE(store.ok());
  return *std::move(store);
}

// Opens the database at `path` with RocksDB alone (every table, by name) and
// lets `change` leave it as another version of latchkey would have.
void WithRawDb(
    const std::string& path,
    const std::function<void(rocksdb::DB&,
                             const std::map<std::string, rocksdb::ColumnFamilyHandle*>&)>& change) {
  std::vector<std::string> names;
  REQUIRE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  REQUIRE(rocksdb::DB::Open(rocksdb::DBOptions(), path, descriptors, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::map<std::string, rocksdb::ColumnFamilyHandle*> by_name;
  for (size_t i = 0; i < names.size(); ++i) by_name[names[i]] = handles[i];
  change(*db, by_name);
  for (auto* h : handles) REQUIRE(db->DestroyColumnFamilyHandle(h).ok());
}

TEST_CASE("a database with a retired table opens, and the retired table is dropped") {
  testing::TempDir dir;
  const std::string path = dir / "db";
  Open(path)->Append(Put("prj_1", "one")).value();
  // Earlier versions kept a "tokens" table that nothing read.
  WithRawDb(path, [](rocksdb::DB& db, const std::map<std::string, rocksdb::ColumnFamilyHandle*>&) {
    rocksdb::ColumnFamilyHandle* tokens = nullptr;
    REQUIRE(db.CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "tokens", &tokens).ok());
    REQUIRE(db.Put(rocksdb::WriteOptions(), tokens, "digest", "prn_1").ok());
    REQUIRE(db.DestroyColumnFamilyHandle(tokens).ok());
  });
  {
    auto store = Open(path);
    REQUIRE(store->head_revision() == 1);
    REQUIRE(**store->Get(Table::kProjects, "prj_1") == "one");
  }
  std::vector<std::string> names;
  REQUIRE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  REQUIRE(std::find(names.begin(), names.end(), "tokens") == names.end());
}

TEST_CASE("a database from before the audit log by revision gets it, filled, when it opens") {
  testing::TempDir dir;
  const std::string path = dir / "db";
  {
    auto store = Open(path);
    for (const char* project : {"prj_b", "", "prj_a"}) {
      Mutation m = Put("row", project);
      m.audit.set_project_id(project);
      REQUIRE(store->Commit(std::move(m)).ok());
    }
  }
  // As an earlier version left it: no "audit_log" table.
  WithRawDb(path,
            [](rocksdb::DB& db, const std::map<std::string, rocksdb::ColumnFamilyHandle*>& cfs) {
              REQUIRE(db.DropColumnFamily(cfs.at("audit_log")).ok());
            });
  auto store = Open(path);
  absl::StatusOr<std::vector<v1::AuditEvent>> log = store->AuditLog(0, 100);
  REQUIRE(log.ok());
  REQUIRE(log->size() == 3);
  REQUIRE((*log)[0].project_id() == "prj_b");
  REQUIRE((*log)[1].project_id() == "");
  REQUIRE((*log)[2].project_id() == "prj_a");
  REQUIRE((*log)[2].revision() == 3);
}

TEST_CASE("an appended mutation is read only by mutations until Sync publishes it") {
  testing::TempDir dir;
  auto store = Open(dir.path());
  std::vector<uint64_t> heard;
  store->SetCommitListener([&](const v1::KeyEvent& e, const v1::AuditEvent&, TableSet) {
    heard.push_back(e.revision());
  });
  absl::StatusOr<uint64_t> rev = store->Append(Put("p", "1"));
  REQUIRE(*rev == 1);
  REQUIRE(store->next_revision() == 2);
  REQUIRE(**store->GetLatest(Table::kProjects, "p") == "1");
  REQUIRE_FALSE(store->Get(Table::kProjects, "p")->has_value());  // not durable: not read
  REQUIRE(store->Scan(Table::kProjects, "", "", 10)->rows.empty());
  REQUIRE(store->AuditEvents("prj_x", 0, 10)->empty());
  REQUIRE(store->Snapshot()->revision() == 0);
  REQUIRE(store->head_revision() == 0);
  REQUIRE(heard.empty());
  REQUIRE(store->EventsAfter(0, 10)->empty());  // appended, not yet durable: not replayed
  REQUIRE(store->Sync(1).ok());
  REQUIRE(store->head_revision() == 1);
  REQUIRE(**store->Get(Table::kProjects, "p") == "1");
  REQUIRE(heard == std::vector<uint64_t>{1});
  REQUIRE(store->EventsAfter(0, 10)->size() == 1);
}

TEST_CASE("replay never skips an event trimmed by an append that is not yet durable") {
  testing::TempDir dir;
  auto store = Open(dir.path(), 5);
  for (int i = 0; i < 10; ++i) REQUIRE(store->Commit(Put("k", "v")).ok());
  // Events 6..10 are retained. Appending 11 (not yet synced) trims 6.
  REQUIRE(store->Append(Put("k", "v")).ok());
  REQUIRE(store->head_revision() == 10);
  REQUIRE(absl::IsOutOfRange(store->EventsAfter(5, 100).status()));
  absl::StatusOr<std::vector<v1::KeyEvent>> kept = store->EventsAfter(6, 100);
  REQUIRE(kept.ok());
  REQUIRE(kept->front().revision() == 7);
  REQUIRE(kept->back().revision() == 10);  // 11 is not durable yet
}

}  // namespace
}  // namespace latchkey

namespace latchkey {
namespace {

TEST_CASE("concurrent commits get unique contiguous revisions, heard in order", "[concurrency]") {
  testing::TempDir dir;
  auto store = Open(dir.path());
  std::vector<uint64_t> heard;  // written under the store's commit lock
  store->SetCommitListener([&](const v1::KeyEvent& e, const v1::AuditEvent&, TableSet) {
    heard.push_back(e.revision());
  });
  std::vector<std::vector<uint64_t>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) got[t].push_back(*store->Commit(Put("k", "v")));
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<uint64_t> all;
  for (const auto& g : got) all.insert(all.end(), g.begin(), g.end());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i < all.size(); ++i) REQUIRE(all[i] == i + 1);
  REQUIRE(heard == all);
}

TEST_CASE("store: a store one process owns is a lone replica: its duties, and nobody to share with",
          "[store]") {
  testing::RocksDbKind kind;
  std::unique_ptr<KeyStore> store = kind.Open();
  REQUIRE(dynamic_cast<LoneReplica*>(&store->replicas()) != nullptr);
  REQUIRE(*store->replicas().Lead("webhooks"));
  REQUIRE(store->replicas().Share("summary").ok());
  REQUIRE(store->replicas().SharedByOthers()->empty());
  // A progress row written for a duty it holds.
  REQUIRE(store->PutProgress("webhook/whk_1", "mine", "webhooks").ok());
  REQUIRE(**store->GetProgress("webhook/whk_1") == "mine");
}

}  // namespace
}  // namespace latchkey
