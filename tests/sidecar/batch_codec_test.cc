// The hand-written ValidateBatch codec against protobuf itself.
#include "sidecar/batch_codec.h"

#include <google/protobuf/stubs/common.h>
#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>

#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/key_format.h"
#include "latchkey/v1/validator.pb.h"

namespace latchkey {
namespace {

std::vector<std::string> Parsed(std::string_view wire, size_t max_keys = 100000) {
  std::vector<std::string_view> views;
  const absl::Status s = ParseBatchRequest(wire, max_keys, &views);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return {views.begin(), views.end()};
}

TEST_CASE("batch requests parse to the keys protobuf reads, unknown fields skipped") {
  v1::ValidateBatchRequest req;
  CHECK(Parsed(req.SerializeAsString()).empty());
  std::vector<std::string> keys = {GenerateKey(v1::API_KEY), "", "junk", std::string(300, 'k')};
  for (int i = 0; i < 1000; ++i) keys.push_back(GenerateKey(v1::SECRET_KEY));
  for (const std::string& k : keys) req.add_keys(k);
  CHECK(Parsed(req.SerializeAsString()) == keys);

  // A newer client's fields this sidecar does not know: varint, fixed64,
  // fixed32 and length-delimited, between the keys.
  std::string wire = req.SerializeAsString();
  wire += std::string("\x28\x96\x01", 3);                   // field 5, varint 150
  wire += std::string("\x31", 1) + std::string(8, '\x07');  // field 6, fixed64
  wire += std::string("\x3d", 1) + std::string(4, '\x01');  // field 7, fixed32
  wire += std::string(
      "\x4a\x03"
      "xyz",
      5);  // field 9, "xyz"
  wire += std::string(
      "\x0a\x02"
      "ab",
      4);  // one more key
  keys.push_back("ab");
  v1::ValidateBatchRequest check;
  REQUIRE(check.ParseFromString(wire));
  CHECK(Parsed(wire) == std::vector<std::string>(check.keys().begin(), check.keys().end()));
  CHECK(Parsed(wire) == keys);
}

TEST_CASE("unknown groups are skipped whole, as protobuf skips them") {
  const std::string wire = {
      0x43,                    // field 8, start group
      0x0a, 3, 'a', 'b', 'c',  //   field 1, "abc": inside the group, not a key
      0x4b,                    //   field 9, start group
      0x08, 1,                 //     field 1, varint 1
      0x4c,                    //   field 9, end group
      0x44,                    // field 8, end group
      0x0a, 2, 'o', 'k',       // field 1, "ok": a key
  };
  v1::ValidateBatchRequest check;
  REQUIRE(check.ParseFromString(wire));
  REQUIRE(check.keys_size() == 1);
  CHECK(Parsed(wire) == std::vector<std::string>{"ok"});
  std::vector<std::string_view> keys;
  CHECK(absl::IsInvalidArgument(
      ParseBatchRequest(std::string{0x43, 0x0a, 0x00}, 10, &keys)));  // unended
  CHECK(absl::IsInvalidArgument(
      ParseBatchRequest(std::string{0x43, 0x4c}, 10, &keys)));  // another's end
  CHECK(absl::IsInvalidArgument(ParseBatchRequest(std::string(200, 0x43), 10, &keys)));  // deep
}

TEST_CASE("tags and lengths are read with protobuf's limits") {
  auto protobuf_parses = [](const std::string& wire) {
    v1::ValidateBatchRequest check;
    return check.ParseFromString(wire);
  };
  std::vector<std::string_view> keys;
  // A key's length in six bytes, and a key's tag in six: protobuf reads at
  // most five of either.
  const std::string long_length("\x0a\x82\x80\x80\x80\x80\x00xy", 9);
  const std::string long_tag("\x8a\x80\x80\x80\x80\x00\x02xy", 9);
  for (const std::string& wire : {long_length, long_tag}) {
    CHECK_FALSE(protobuf_parses(wire));
    CHECK(absl::IsInvalidArgument(ParseBatchRequest(wire, 10, &keys)));
  }
  // A five-byte tag whose bits past the 32nd are set: protobuf drops them,
  // which leaves field 1.
  const std::string high_bits("\x8a\x80\x80\x80\x70\x02xy", 8);
  REQUIRE(protobuf_parses(high_bits));
  CHECK(Parsed(high_bits) == std::vector<std::string>{"xy"});
}

TEST_CASE("malformed or oversized batch requests are INVALID_ARGUMENT") {
  auto refused = [](std::string_view wire, size_t max_keys = 100) {
    std::vector<std::string_view> keys;
    return ParseBatchRequest(wire, max_keys, &keys);
  };
  CHECK(absl::IsInvalidArgument(refused(std::string("\x0a", 1))));  // no length
  CHECK(
      absl::IsInvalidArgument(refused(std::string("\x0a\x05"
                                                  "ab",
                                                  4))));                // past the end
  CHECK(absl::IsInvalidArgument(refused(std::string("\x0b", 1))));      // a group
  CHECK(absl::IsInvalidArgument(refused(std::string("\x02\x00", 2))));  // field 0
  CHECK(absl::IsInvalidArgument(refused(std::string(11, '\xff'))));     // endless varint
  CHECK(absl::IsInvalidArgument(refused(std::string("\x31\x01", 2))));  // short fixed64
  v1::ValidateBatchRequest req;
  for (int i = 0; i < 4; ++i) req.add_keys("k");
  CHECK(refused(req.SerializeAsString(), 4).ok());
  const absl::Status over = refused(req.SerializeAsString(), 3);
  CHECK(absl::IsInvalidArgument(over));
  CHECK(over.message().find("at most 3") != std::string_view::npos);
}

TEST_CASE("random bytes: whatever protobuf reads, the codec reads the same keys") {
  const google::protobuf::LogSilencer quiet;  // protobuf logs each non-UTF-8 key
  // Fixed keys and seed: the same 200,000 requests every run. (Random ones
  // found that protobuf skips unknown groups, which the codec refused.)
  std::mt19937_64 rng(7);
  v1::ValidateBatchRequest base;
  for (int i = 0; i < 5; ++i) base.add_keys("lkp_" + std::string(38, static_cast<char>('a' + i)));
  const std::string seed = base.SerializeAsString();
  int agreed = 0, not_utf8 = 0;
  for (int round = 0; round < 200000; ++round) {
    std::string wire = seed;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % (wire.size() + 1);
      switch (rng() % 3) {
        case 0:
          if (at < wire.size()) wire[at] = static_cast<char>(rng());
          break;
        case 1:
          wire.insert(at, 1, static_cast<char>(rng()));
          break;
        default:
          wire.resize(at);
          break;
      }
    }
    std::vector<std::string_view> ours;
    const bool ours_ok = ParseBatchRequest(wire, 1000, &ours).ok();
    v1::ValidateBatchRequest theirs;
    // protobuf also refuses keys that are not UTF-8; the codec leaves those
    // to the check, which calls them MALFORMED.
    INFO("round " << round);
    if (theirs.ParseFromString(wire)) {
      REQUIRE(ours_ok);
      REQUIRE(std::vector<std::string>(ours.begin(), ours.end()) ==
              std::vector<std::string>(theirs.keys().begin(), theirs.keys().end()));
      ++agreed;
    } else if (ours_ok) {
      // Then protobuf refused only a key that is not UTF-8.
      REQUIRE(std::any_of(ours.begin(), ours.end(), [](std::string_view key) {
        return !google::protobuf::internal::IsStructurallyValidUTF8(key.data(),
                                                                    static_cast<int>(key.size()));
      }));
      ++not_utf8;
    }
  }
  CHECK(agreed > 10000);
  CHECK(not_utf8 > 1000);
}

TEST_CASE("batch results are the bytes protobuf writes for the same responses") {
  KeySet set;
  KeySet::Builder b;
  const std::string active = GenerateKey(v1::API_KEY), revoked = GenerateKey(v1::SECRET_KEY);
  for (const std::string& k : {active, revoked}) {
    v1::KeyEntry e;
    e.set_digest(Sha256Bytes(k));
    e.set_key_id(GenerateKeyId());
    e.set_project_id(GenerateProjectId());
    e.set_kind(ParseKey(k));
    e.set_state(k == active ? v1::KEY_STATE_ACTIVE : v1::KEY_STATE_REVOKED);
    REQUIRE(b.Add(e).ok());
  }
  set.Replace(b);
  const absl::Time now = absl::Now();
  std::vector<Validation> results = {set.Validate(active, now), set.Validate(revoked, now),
                                     set.Validate("junk", now),
                                     set.Validate(GenerateKey(v1::API_KEY), now), Validation{}};
  REQUIRE(results[0].verdict == v1::VALID);
  REQUIRE(results[1].verdict == v1::REVOKED);
  std::string ours;
  v1::ValidateBatchResponse expected;
  for (const Validation& v : results) {
    AppendBatchResult(v, &ours);
    v.ToProto(expected.add_results());
  }
  CHECK(ours == expected.SerializeAsString());
  v1::ValidateBatchResponse back;
  REQUIRE(back.ParseFromString(ours));
  CHECK(back.results(0).key_id() == results[0].key_id());
  CHECK(back.results(0).project_id() == results[0].project_id());
}

}  // namespace
}  // namespace latchkey
