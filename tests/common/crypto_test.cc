#include "common/crypto.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "common/files.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

TEST_CASE("SHA-256 digests match the standard test vector") {
  REQUIRE(HexPrefix(Sha256Bytes("abc"), 32) ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("a sealed value opens with the same associated data and hides the plaintext") {
  testing::TempDir dir;
  absl::StatusOr<Sealer> sealer = Sealer::LoadOrCreate(dir / "master.key");
  REQUIRE(sealer.ok());
  const std::string value = "lkp_secretvalue";
  absl::StatusOr<std::string> sealed = sealer->Seal(value, "key_1");
  REQUIRE(sealed.ok());
  REQUIRE(sealed->find(value) == std::string::npos);
  REQUIRE(sealed->size() == value.size() + 28);
  absl::StatusOr<std::string> opened = sealer->Open(*sealed, "key_1");
  REQUIRE(opened.ok());
  REQUIRE(*opened == value);
  // Fresh nonce per seal.
  REQUIRE(*sealer->Seal(value, "key_1") != *sealed);
}

TEST_CASE("a sealed value moved to another key or tampered with fails to open") {
  testing::TempDir dir;
  Sealer sealer = *Sealer::LoadOrCreate(dir / "master.key");
  const std::string sealed = *sealer.Seal("value", "key_1");
  REQUIRE(absl::IsDataLoss(sealer.Open(sealed, "key_2").status()));
  std::string flipped = sealed;
  flipped[14] ^= 1;
  REQUIRE(absl::IsDataLoss(sealer.Open(flipped, "key_1").status()));
  REQUIRE(absl::IsDataLoss(sealer.Open("short", "key_1").status()));
}

TEST_CASE("the master key file is created 0600 and reused") {
  testing::TempDir dir;
  const std::string path = dir / "master.key";
  Sealer first = *Sealer::LoadOrCreate(path);
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  REQUIRE((st.st_mode & 0777) == 0600);
  REQUIRE(st.st_size == 32);
  Sealer second = *Sealer::LoadOrCreate(path);
  REQUIRE(*second.Open(*first.Seal("v", "k"), "k") == "v");
}

TEST_CASE("a master key file of the wrong size is refused") {
  testing::TempDir dir;
  REQUIRE(WritePrivateFile(dir / "master.key", "too short").ok());
  REQUIRE(absl::IsFailedPrecondition(Sealer::LoadOrCreate(dir / "master.key").status()));
}

}  // namespace
}  // namespace latchkey
