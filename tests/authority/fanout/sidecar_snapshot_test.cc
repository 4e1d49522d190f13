// authority/fanout/sidecar_snapshot.h: what a sidecar starts from, in chunks.
#include "authority/fanout/sidecar_snapshot.h"

#include <catch2/catch.hpp>
#include <set>
#include <string>

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
// retired value when `retired`.
Mutation AddKey(int n, const std::string& project, bool retired = false) {
  internal::KeyRecord rec;
  const std::string id = "key_" + std::to_string(1000 + n);
  rec.mutable_key()->set_key_id(id);
  rec.mutable_key()->set_project_id(project);
  rec.mutable_key()->set_kind(v1::API_KEY);
  rec.mutable_key()->set_state(v1::KEY_STATE_ACTIVE);
  rec.set_digest("d" + std::to_string(n));
  if (retired) rec.add_retired()->set_digest("old" + std::to_string(n));
  Mutation m;
  m.writes.push_back(Write{Table::kKeys, id, rec.SerializeAsString()});
  m.audit.set_action("test");
  return m;
}

struct Read {
  std::vector<v1::SnapshotChunk> chunks;
  std::set<std::string> disabled;
  std::set<std::string> digests;
};

Read ReadAll(SidecarSnapshot& snapshot) {
  Read read;
  for (;;) {
    v1::SnapshotChunk chunk;
    absl::StatusOr<bool> more = snapshot.Next(chunk);
    REQUIRE(more.ok());
    if (!*more) {
      REQUIRE(chunk.ByteSizeLong() == 0);  // untouched at the end
      break;
    }
    for (const std::string& p : chunk.disabled_project_ids()) read.disabled.insert(p);
    for (const v1::KeyEntry& e : chunk.entries()) read.digests.insert(e.digest());
    read.chunks.push_back(std::move(chunk));
  }
  // Asked again after the end, still nothing.
  v1::SnapshotChunk after;
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
  REQUIRE(read.digests == std::set<std::string>{"d1", "d2", "old2"});
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
  REQUIRE(read.digests == std::set<std::string>{"d1"});
}

TEST_CASE("a sidecar snapshot of many keys comes in chunks of 256 keys") {
  testing::TempDir dir;
  std::unique_ptr<KeyStore> store = *OpenRocksDbStore({dir / "db", 100000, true, false});
  constexpr int kKeys = 600;
  for (int n = 0; n < kKeys; ++n) REQUIRE(store->Commit(AddKey(n, "prj_a")).ok());
  SidecarSnapshot snapshot(*store);
  const Read read = ReadAll(snapshot);
  REQUIRE(read.digests.size() == kKeys);
  // The projects' chunk (none disabled), then 256 + 256 + 88 keys.
  REQUIRE(read.chunks.size() == 4);
  REQUIRE(read.chunks[1].entries_size() == 256);
  REQUIRE(read.chunks[2].entries_size() == 256);
  REQUIRE(read.chunks[3].entries_size() == kKeys - 512);
  for (const v1::SnapshotChunk& c : read.chunks) REQUIRE(c.ByteSizeLong() < (1u << 20));
}

TEST_CASE("a sidecar snapshot of a record it cannot read is DATA_LOSS") {
  testing::TempDir dir;
  std::unique_ptr<KeyStore> store = *OpenRocksDbStore({dir / "db"});
  Mutation m;
  m.writes.push_back(Write{Table::kKeys, "key_broken", std::string("\xff\xff\xff", 3)});
  m.audit.set_action("test");
  REQUIRE(store->Commit(std::move(m)).ok());
  SidecarSnapshot snapshot(*store);
  v1::SnapshotChunk chunk;
  REQUIRE(*snapshot.Next(chunk));  // the projects: none
  absl::StatusOr<bool> keys = snapshot.Next(chunk);
  REQUIRE(absl::IsDataLoss(keys.status()));
}

}  // namespace
}  // namespace latchkey
