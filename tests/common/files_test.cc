// Files that hold secrets (master key, tokens): written private and whole,
// never through a planted link, and refused when others could read them.
#include "common/files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "common/crypto.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

mode_t Mode(const std::string& path) {
  struct stat st;
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

TEST_CASE("a private file is written whole, owner-only, with no temporary left behind") {
  testing::TempDir dir;
  const std::string path = dir / "admin.token";
  REQUIRE(WritePrivateFile(path, "first\n").ok());
  REQUIRE(testing::ReadFile(path) == "first\n");
  REQUIRE(Mode(path) == 0600);
  REQUIRE(WritePrivateFile(path, "second").ok());  // replaces
  REQUIRE(testing::ReadFile(path) == "second");
  REQUIRE(!std::filesystem::exists(path + ".tmp"));
}

TEST_CASE("a link planted where the temporary goes is not followed") {
  testing::TempDir dir;
  const std::string victim = dir / "victim";
  REQUIRE(WritePrivateFile(victim, "keep me").ok());
  const std::string path = dir / "master.key";
  std::filesystem::create_symlink(victim, path + ".tmp");
  REQUIRE(WritePrivateFile(path, "secret").ok());
  REQUIRE(testing::ReadFile(victim) == "keep me");
  REQUIRE(testing::ReadFile(path) == "secret");
  REQUIRE(!std::filesystem::is_symlink(path));
}

TEST_CASE("reading a private file refuses links and files others can read") {
  testing::TempDir dir;
  const std::string path = dir / "master.key";
  REQUIRE(ReadPrivateFile(path)->empty());  // absent: nothing yet
  REQUIRE(WritePrivateFile(path, "s3cr3t-bytes").ok());
  REQUIRE(*ReadPrivateFile(path) == "s3cr3t-bytes");

  REQUIRE(::chmod(path.c_str(), 0640) == 0);
  absl::StatusOr<std::string> loose = ReadPrivateFile(path);
  REQUIRE(absl::IsFailedPrecondition(loose.status()));
  REQUIRE(loose.status().message().find("chmod 600") != std::string_view::npos);
  REQUIRE(loose.status().message().find("s3cr3t-bytes") == std::string_view::npos);
  REQUIRE(::chmod(path.c_str(), 0600) == 0);

  const std::string link = dir / "link.key";
  std::filesystem::create_symlink(path, link);
  REQUIRE(absl::IsFailedPrecondition(ReadPrivateFile(link).status()));
  REQUIRE(absl::IsFailedPrecondition(ReadPrivateFile(dir.path()).status()));
}

TEST_CASE("the master key file is held to the private-file rules") {
  testing::TempDir dir;
  const std::string path = dir / "master.key";
  REQUIRE(Sealer::LoadOrCreate(path).ok());
  REQUIRE(::chmod(path.c_str(), 0644) == 0);
  REQUIRE(absl::IsFailedPrecondition(Sealer::LoadOrCreate(path).status()));
}

TEST_CASE("token files: surrounding whitespace is stripped and an empty file is NOT_FOUND") {
  testing::TempDir dir;
  REQUIRE(WritePrivateFile(dir / "t", "  lkt_token \n").ok());
  REQUIRE(*ReadTokenFile(dir / "t") == "lkt_token");
  REQUIRE(WritePrivateFile(dir / "empty", " \n").ok());
  REQUIRE(absl::IsNotFound(ReadTokenFile(dir / "empty").status()));
  REQUIRE(absl::IsNotFound(ReadTokenFile(dir / "absent").status()));
}

}  // namespace
}  // namespace latchkey
