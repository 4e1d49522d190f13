// authority/fanout/shared_snapshots.h: snapshots read once for the streams
// that begin them together, and the last one kept for the streams that begin
// after it.
#include "authority/fanout/shared_snapshots.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "authority/core/sidecar_keys.h"
#include "authority/internal/records.pb.h"
#include "tests/testing/test_store.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

// A store of `keys` keys, each with its sidecar keys row.
class Keys {
 public:
  explicit Keys(int keys) : store_(testing::OpenTestStore(dir_)) {
    for (int n = 0; n < keys; n++) {
      internal::KeyRecord rec;
      rec.mutable_key()->set_key_id("key_" + std::to_string(100000 + n));
      rec.mutable_key()->set_project_id("prj_a");
      rec.mutable_key()->set_kind(v1::API_KEY);
      rec.mutable_key()->set_state(v1::KEY_STATE_ACTIVE);
      rec.set_digest(std::string(32, static_cast<char>(n)));
      Mutation m;
      m.writes.push_back(Write{Table::kKeys, rec.key().key_id(), rec.SerializeAsString()});
      m.writes.push_back(
          Write{Table::kSidecarKeys, rec.key().key_id(), SidecarKeysRow(SidecarEntries(rec))});
      m.audit.set_action("test");
      REQUIRE(store_->Commit(std::move(m)).ok());
    }
  }

  KeyStore& store() { return *store_; }

  // `n` more revisions, none of which touches a key.
  void Pass(int n) {
    for (int i = 0; i < n; i++) {
      Mutation m;
      m.writes.push_back(Write{Table::kProjects, "prj_" + std::to_string(i), ""});
      m.audit.set_action("test");
      REQUIRE(store_->Commit(std::move(m)).ok());
    }
  }

 private:
  testing::TempDir dir_;
  std::unique_ptr<KeyStore> store_;
};

// Every message a reader gives, to the end marker.
std::vector<SharedResponse> ReadAll(SnapshotReader& reader) {
  std::vector<SharedResponse> messages;
  while (!reader.finished()) {
    absl::StatusOr<SharedResponse> next = reader.Next();
    REQUIRE(next.ok());
    REQUIRE(*next != nullptr);
    messages.push_back(*next);
  }
  return messages;
}

constexpr size_t kPlenty = 64 << 20;

TEST_CASE("a snapshot read to its end is kept: a stream that begins later sends the same bytes") {
  Keys keys(500);
  SharedSnapshots snapshots(keys.store(), kPlenty);
  std::vector<SharedResponse> first = ReadAll(*snapshots.Begin());  // its reader is gone
  REQUIRE(first.size() >= 3);  // the projects, the keys, the end
  size_t bytes = 0;
  for (const SharedResponse& m : first) bytes += m->size();
  CHECK(snapshots.kept_bytes() == bytes);

  std::unique_ptr<SnapshotReader> later = snapshots.Begin();
  CHECK(later->revision() == keys.store().head_revision());
  std::vector<SharedResponse> second = ReadAll(*later);
  CHECK(snapshots.begun() == 1);  // the store was read once
  REQUIRE(second.size() == first.size());
  for (size_t i = 0; i < first.size(); i++) CHECK(second[i] == first[i]);
}

TEST_CASE("with nothing to keep, a stream that begins after the last reader reads the store") {
  Keys keys(50);
  SharedSnapshots snapshots(keys.store(), 0);
  ReadAll(*snapshots.Begin());
  CHECK(snapshots.kept_bytes() == 0);
  ReadAll(*snapshots.Begin());
  CHECK(snapshots.begun() == 2);
}

TEST_CASE("a snapshot larger than the limit is not kept") {
  Keys keys(50);
  SharedSnapshots snapshots(keys.store(), 1000);  // 50 keys' chunks are over 1,000 bytes
  ReadAll(*snapshots.Begin());
  CHECK(snapshots.kept_bytes() == 0);
  ReadAll(*snapshots.Begin());
  CHECK(snapshots.begun() == 2);
}

TEST_CASE("a snapshot its readers left before its end is not kept") {
  Keys keys(50);
  SharedSnapshots snapshots(keys.store(), kPlenty);
  {
    std::unique_ptr<SnapshotReader> left = snapshots.Begin();
    REQUIRE(left->Next().ok());
    REQUIRE_FALSE(left->finished());
  }
  CHECK(snapshots.kept_bytes() == 0);
  ReadAll(*snapshots.Begin());
  CHECK(snapshots.begun() == 2);
}

TEST_CASE("a kept snapshot gives way once the head is more than 1,000 revisions past it") {
  Keys keys(50);
  SharedSnapshots snapshots(keys.store(), kPlenty);
  ReadAll(*snapshots.Begin());
  const size_t old_bytes = snapshots.kept_bytes();
  REQUIRE(old_bytes > 0);

  keys.Pass(1000);  // still joinable: the stream replays these
  ReadAll(*snapshots.Begin());
  CHECK(snapshots.begun() == 1);

  keys.Pass(1);
  std::unique_ptr<SnapshotReader> fresh = snapshots.Begin();
  CHECK(snapshots.begun() == 2);
  CHECK(fresh->revision() == keys.store().head_revision());
  CHECK(snapshots.kept_bytes() == 0);  // the old one went before the new one was read
  ReadAll(*fresh);
  CHECK(snapshots.kept_bytes() > old_bytes);  // the new one, with 1,000 projects more
}

}  // namespace
}  // namespace latchkey
