// authority/fanout/sidecar_snapshot.h: what a sidecar starts from, in chunks
// copied from the sidecar keys rows.
#include "authority/fanout/sidecar_snapshot.h"

#include <catch2/catch.hpp>
#include <set>
#include <string>

#include "authority/core/sidecar_keys.h"
#include "authority/internal/records.pb.h"
#include "authority/store/rocksdb/rocksdb_store.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

Mutation AddProject(const std::string& id, bool api_access) {
  internal::ProjectRecord rec;
  rec.mutable_project()->set_project_id(id);
  rec.mutable_project()->set_api_access_enabled(api_access);
  Mutation m;
  m.writes.push_back(Write{Table::kProjects, id, rec.SerializeAsString()});
  m.audit.set_action("test");
  return m;
}

// A key of `project` with one current value (digest `d<n>`), and one
// retired value when `retired`: its record and its sidecar keys row, as
// internal::PutKey writes them.
internal::KeyRecord KeyRecordOf(int n, const std::string& project, bool retired = false) {
  internal::KeyRecord rec;
  rec.mutable_key()->set_key_id("key_" + std::to_string(100000 + n));
  rec.mutable_key()->set_project_id(project);
  rec.mutable_key()->set_kind(v1::API_KEY);
  rec.mutable_key()->set_state(v1::KEY_STATE_ACTIVE);
  rec.set_digest("d" + std::to_string(n));
  if (retired) rec.add_retired()->set_digest("old" + std::to_string(n));
  return rec;
}

void AddKeyWrites(Mutation& m, const internal::KeyRecord& rec) {
  const std::string& id = rec.key().key_id();
  m.writes.push_back(Write{Table::kKeys, id, rec.SerializeAsString()});
  m.writes.push_back(Write{Table::kSidecarKeys, id, SidecarKeysRow(SidecarEntries(rec))});
}

Mutation AddKey(int n, const std::string& project, bool retired = false) {
  Mutation m;
  AddKeyWrites(m, KeyRecordOf(n, project, retired));
  m.audit.set_action("test");
  return m;
}

struct Read {
  std::vector<v1::SnapshotChunk> chunks;
  std::vector<size_t> sizes;  // each chunk's encoded size
  std::set<std::string> disabled;
  std::multiset<std::string> digests;
};

Read ReadAll(SidecarSnapshot& snapshot) {
  Read read;
  for (;;) {
    std::string bytes = "untouched";
    absl::StatusOr<bool> more = snapshot.Next(bytes);
    REQUIRE(more.ok());
    if (!*more) {
      REQUIRE(bytes == "untouched");
      break;
    }
    v1::SnapshotChunk chunk;
    REQUIRE(chunk.ParseFromString(bytes));
    for (const std::string& p : chunk.disabled_project_ids()) read.disabled.insert(p);
    for (const v1::KeyEntry& e : chunk.entries()) read.digests.insert(e.digest());
    read.sizes.push_back(bytes.size());
    read.chunks.push_back(std::move(chunk));
  }
  // Asked again after the end, still nothing.
  std::string after;
  REQUIRE_FALSE(*snapshot.Next(after));
  return read;
}

TEST_CASE("a sidecar snapshot holds the disabled projects, then every key's digests") {
  testing::TempDir dir;
  std::unique_ptr<KeyStore> store = *OpenRocksDbStore({dir / "db"});
  REQUIRE(store->Commit(AddProject("prj_on", true)).ok());
  REQUIRE(store->Commit(AddProject("prj_off", false)).ok());
  REQUIRE(store->Commit(AddKey(1, "prj_on")).ok());
  REQUIRE(store->Commit(AddKey(2, "prj_off", /*retired=*/true)).ok());

  SidecarSnapshot snapshot(*store);
  REQUIRE(snapshot.revision() == 4);
  const Read read = ReadAll(snapshot);
  REQUIRE(read.disabled == std::set<std::string>{"prj_off"});
  // A retired value is there too: sidecars must know to refuse it.
  REQUIRE(read.digests == std::multiset<std::string>{"d1", "d2", "old2"});
  // Projects come before keys.
  REQUIRE(read.chunks.front().disabled_project_ids_size() == 1);
  REQUIRE(read.chunks.front().entries_size() == 0);
}

TEST_CASE("a sidecar snapshot reads its revision, whatever commits meanwhile") {
  testing::TempDir dir;
  std::unique_ptr<KeyStore> store = *OpenRocksDbStore({dir / "db"});
  REQUIRE(store->Commit(AddKey(1, "prj_a")).ok());
  SidecarSnapshot snapshot(*store);
  REQUIRE(store->Commit(AddKey(2, "prj_a")).ok());
  REQUIRE(store->Commit(AddProject("prj_a", false)).ok());
  REQUIRE(snapshot.revision() == 1);
  const Read read = ReadAll(snapshot);
  REQUIRE(read.disabled.empty());
  REQUIRE(read.digests == std::multiset<std::string>{"d1"});
}

TEST_CASE("a sidecar snapshot of many keys comes in chunks of half a MiB or so, each under 1 MiB") {
  testing::TempDir dir;
  std::unique_ptr<KeyStore> store = *OpenRocksDbStore({dir / "db", 100000, true, false});
  constexpr int kKeys = 12000;
  for (int n = 0; n < kKeys;) {
    Mutation m;
    m.audit.set_action("test");
    for (int i = 0; i < 1000; ++i, ++n) {
      internal::KeyRecord rec = KeyRecordOf(n, "prj_a");
      rec.set_digest(std::string(32, 'a') + std::to_string(n));  // as long as a SHA-256
      AddKeyWrites(m, rec);
    }
    REQUIRE(store->Commit(std::move(m)).ok());
  }
  SidecarSnapshot snapshot(*store);
  const Read read = ReadAll(snapshot);
  // Every key once, in chunks past the first (the projects, none disabled).
  REQUIRE(read.digests.size() == kKeys);
  REQUIRE(std::set<std::string>(read.digests.begin(), read.digests.end()).size() == kKeys);
  REQUIRE(read.chunks.size() >= 3);
  REQUIRE(read.chunks[0].entries_size() == 0);
  for (size_t i = 1; i < read.chunks.size(); ++i) {
    INFO("chunk " << i);
    REQUIRE(read.sizes[i] < (1u << 20));
    if (i + 1 < read.chunks.size()) REQUIRE(read.sizes[i] >= 512 * 1024);
  }
}

TEST_CASE("a sidecar snapshot of a row that is not a sidecar keys row is DATA_LOSS") {
  testing::TempDir dir;
  std::unique_ptr<KeyStore> store = *OpenRocksDbStore({dir / "db"});
  REQUIRE(store->Commit(AddKey(1, "prj_a")).ok());
  Mutation m;
  m.writes.push_back(Write{Table::kSidecarKeys, "key_broken", std::string("\xff\xff\xff", 3)});
  m.audit.set_action("test");
  REQUIRE(store->Commit(std::move(m)).ok());
  SidecarSnapshot snapshot(*store);
  std::string chunk;
  REQUIRE(*snapshot.Next(chunk));  // the projects: none
  absl::StatusOr<bool> keys = snapshot.Next(chunk);
  REQUIRE(absl::IsDataLoss(keys.status()));
  CHECK(std::string(keys.status().message()).find("key_broken") != std::string::npos);
}

TEST_CASE("a sidecar keys row is told from other bytes by its top level alone") {
  for (bool retired : {false, true}) {
    const internal::KeyRecord rec = KeyRecordOf(7, "prj_a", retired);
    const std::string row = SidecarKeysRow(SidecarEntries(rec));
    CHECK(IsSidecarKeysRow(row));
    CHECK(IsSidecarKeysRow(row + row));                            // rows end to end are one chunk
    CHECK_FALSE(IsSidecarKeysRow(row.substr(0, row.size() - 1)));  // cut short
    CHECK_FALSE(IsSidecarKeysRow(row + "\x0a"));                   // a field with no length
  }
  CHECK_FALSE(IsSidecarKeysRow(""));  // every key has its current value
  v1::SnapshotChunk projects;
  projects.add_disabled_project_ids("prj_a");  // field 2: not an entry
  CHECK_FALSE(IsSidecarKeysRow(projects.SerializeAsString()));
  CHECK_FALSE(IsSidecarKeysRow(std::string("\x0a\xff\xff\xff\xff\xff\x01", 7)));  // huge length
}

}  // namespace
}  // namespace latchkey
