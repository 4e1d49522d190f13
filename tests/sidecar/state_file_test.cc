#include "sidecar/state_file.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/crypto.h"
#include "common/files.h"
#include "common/key_format.h"
#include "common/time_util.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A key set with current, revoked and expiring keys and a disabled project.
// Returns the key values it holds digests of.
std::vector<std::string> Fill(KeySet& keys) {
  std::vector<std::string> values;
  KeySet::Builder b;
  const std::string project = GenerateProjectId();
  for (int i = 0; i < 100; ++i) {
    const std::string value = GenerateKey(i % 3 == 0 ? v1::SECRET_KEY : v1::API_KEY);
    values.push_back(value);
    v1::KeyEntry e;
    e.set_digest(Sha256Bytes(value));
    e.set_key_id(GenerateKeyId());
    e.set_project_id(i % 2 ? project : GenerateProjectId());
    e.set_kind(ParseKey(value));
    e.set_state(i % 5 == 0 ? v1::KEY_STATE_REVOKED : v1::KEY_STATE_ACTIVE);
    if (i % 7 == 0) *e.mutable_expire_time() = ToProto(absl::FromUnixSeconds(1900000000 + i));
    REQUIRE(b.Add(e).ok());
  }
  REQUIRE(b.AddDisabledProject(project).ok());
  keys.Replace(b);
  return values;
}

const SavedState kAt{.store_id = "st_abc",
                     .revision = 42,
                     .confirmed = absl::FromUnixSeconds(1800000000),
                     .session = "ses_xyz"};

TEST_CASE("a saved key set loads back the same, with where it stood") {
  testing::TempDir dir;
  KeySet keys;
  Fill(keys);
  REQUIRE(SaveState(dir / "state", keys, kAt).ok());

  KeySet::Builder b;
  absl::StatusOr<SavedState> loaded = LoadState(dir / "state", b);
  REQUIRE(loaded.ok());
  CHECK(loaded->store_id == kAt.store_id);
  CHECK(loaded->revision == kAt.revision);
  CHECK(loaded->confirmed == kAt.confirmed);
  CHECK(loaded->session == kAt.session);
  KeySet again;
  again.Replace(b);
  CHECK(again.Dump() == keys.Dump());
  CHECK(again.DisabledProjects() == keys.DisabledProjects());
  CHECK(again.size() == 100);
}

TEST_CASE("the state file holds digests only, owner-readable, and no temporary file is left") {
  testing::TempDir dir;
  KeySet keys;
  const std::vector<std::string> values = Fill(keys);
  REQUIRE(SaveState(dir / "state", keys, kAt).ok());
  const std::string file = Slurp(dir / "state");
  for (const std::string& v : values) {
    REQUIRE(file.find(v) == std::string::npos);
    REQUIRE(file.find(v.substr(4, 32)) == std::string::npos);
  }
  struct stat st;
  REQUIRE(stat((dir / "state").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  size_t files = 0;
  for ([[maybe_unused]] const auto& f : std::filesystem::directory_iterator(dir.path())) ++files;
  CHECK(files == 1);
}

TEST_CASE("a missing, torn, altered or foreign state file is refused and loads nothing") {
  testing::TempDir dir;
  KeySet::Builder b;
  CHECK(absl::IsNotFound(LoadState(dir / "none", b).status()));

  KeySet keys;
  Fill(keys);
  const std::string good = EncodeState(keys, kAt);
  auto refused = [&](const std::string& contents) {
    REQUIRE(WritePrivateFile(dir / "state", contents).ok());
    KeySet::Builder into;
    absl::Status s = LoadState(dir / "state", into).status();
    INFO(s.ToString());
    CHECK(into.size() == 0);
    return s;
  };
  std::string altered = good;
  altered[altered.size() / 2] ^= 0x20;
  CHECK(absl::IsDataLoss(refused(altered)));
  CHECK(absl::IsDataLoss(refused(good.substr(0, good.size() - 7))));
  CHECK(absl::IsDataLoss(refused("LKSTATE0" + good.substr(8))));
  // A file written before the table kept tags (whole digests, LKSTATE1).
  CHECK(absl::IsDataLoss(refused("LKSTATE1" + good.substr(8))));
  CHECK(absl::IsNotFound(refused("")));  // an empty file is no state
  CHECK(absl::IsDataLoss(refused("garbage")));
}

}  // namespace
}  // namespace latchkey
