#include "common/key_format.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <set>

namespace latchkey {
namespace {

TEST_CASE("generated API and secret keys have the documented shape and parse as their kind") {
  const auto [kind, prefix] = GENERATE(std::pair{v1::API_KEY, std::string("lkp_")},
                                       std::pair{v1::SECRET_KEY, std::string("lks_")});
  const std::string key = GenerateKey(kind);
  REQUIRE(key.size() == 42);
  REQUIRE(key.substr(0, 4) == prefix);
  for (char c : key.substr(4)) REQUIRE(std::isalnum(static_cast<unsigned char>(c)));
  REQUIRE(ParseKey(key) == kind);
}

TEST_CASE("the checksum is zlib CRC-32 of the body in 6 base62 digits, most significant first") {
  const std::string body = "lkp_" + std::string(32, 'a');
  uint32_t crc = crc32(0L, reinterpret_cast<const Bytef*>(body.data()), body.size());
  const std::string alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string expected;
  for (int i = 0; i < 6; ++i) {
    expected.insert(expected.begin(), alphabet[crc % 62]);
    crc /= 62;
  }
  REQUIRE(Checksum(body) == expected);
  REQUIRE(ParseKey(body + expected) == v1::API_KEY);
  // Small CRCs are left-padded with '0'.
  REQUIRE(Checksum("").size() == 6);
  REQUIRE(Checksum("") == "000000");  // crc32 of nothing is 0
}

TEST_CASE("malformed keys are rejected without a lookup") {
  const std::string good = GenerateKey(v1::API_KEY);
  std::string typo = good;
  typo[10] = typo[10] == 'a' ? 'b' : 'a';
  std::string bad_checksum = good;
  bad_checksum.back() = bad_checksum.back() == '0' ? '1' : '0';
  const std::string malformed =
      GENERATE_COPY(std::string(""), std::string("lkp_"), good.substr(0, 41), good + "x",
                    std::string("lkx_") + good.substr(4), "lkt_" + good.substr(4), typo,
                    bad_checksum, good.substr(0, 20) + "!" + good.substr(21),
                    std::string(10 * 1024, 'A'), std::string("lkp_") + std::string(38, '\0'));
  REQUIRE(ParseKey(malformed) == v1::KEY_KIND_UNSPECIFIED);
}

TEST_CASE("keys, ids and tokens are unique and ids are never derived from keys") {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    REQUIRE(seen.insert(GenerateKey(v1::API_KEY)).second);
    REQUIRE(seen.insert(GenerateKeyId()).second);
  }
  const std::string id = GenerateKeyId();
  REQUIRE(IsWellFormedId(id, kKeyIdPrefix, kKeyIdRandomChars));
  REQUIRE(IsWellFormedId(GenerateProjectId(), kProjectIdPrefix, kProjectIdRandomChars));
  REQUIRE_FALSE(IsWellFormedId("key_short", kKeyIdPrefix, kKeyIdRandomChars));
  REQUIRE_FALSE(IsWellFormedId(GenerateProjectId(), kKeyIdPrefix, kKeyIdRandomChars));
  REQUIRE(IsWellFormedToken(GenerateToken()));
  REQUIRE_FALSE(IsWellFormedToken(GenerateKey(v1::API_KEY)));
}

TEST_CASE("a key hint shows prefix, two characters and the last four, never enough to use") {
  const std::string key = GenerateKey(v1::API_KEY);
  const std::string hint = KeyHint(key);
  REQUIRE(hint == key.substr(0, 6) + "\u2026" + key.substr(38));
  REQUIRE(hint.find(key.substr(6, 32)) == std::string::npos);
}

TEST_CASE("random base62 characters are spread over the whole alphabet") {
  const std::string s = RandomBase62(62 * 200);
  std::map<char, int> counts;
  for (char c : s) ++counts[c];
  REQUIRE(counts.size() == 62);
  for (const auto& [c, n] : counts) REQUIRE(n > 100);  // expected 200 each
}

}  // namespace
}  // namespace latchkey
