// A watch message read as the sync client reads it (snapshot chunks decoded in
// place) against protobuf's parse of the same bytes: the same answers, on
// what the authority sends and on bytes it never would.
#include "sidecar/watch_message.h"

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "common/crypto.h"
#include "common/key_format.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

// Protobuf's wire format, written by hand so that tests can write what
// protobuf's own writer never would.
std::string Varint(uint64_t v) {
  std::string out;
  do {
    const uint8_t low = v & 0x7f;
    v >>= 7;
    out.push_back(static_cast<char>(v != 0 ? low | 0x80 : low));
  } while (v != 0);
  return out;
}
std::string Tag(uint32_t field, uint32_t wire_type) { return Varint(field << 3 | wire_type); }
std::string Field(uint32_t field, const std::string& bytes) {
  return Tag(field, 2) + Varint(bytes.size()) + bytes;
}
std::string VarintField(uint32_t field, uint64_t v) { return Tag(field, 0) + Varint(v); }

// A well-formed KeyEntry's fields.
struct Entry {
  std::string value = GenerateKey(v1::API_KEY);
  std::string key_id = GenerateKeyId();
  std::string project_id = GenerateProjectId();

  std::string Fields() const {
    return Field(1, Sha256Bytes(value)) + Field(2, key_id) + Field(3, project_id) +
           VarintField(4, v1::API_KEY) + VarintField(5, v1::KEY_STATE_ACTIVE);
  }
};

// A WatchResponse holding one chunk of `entries` (encoded entry fields).
std::string Chunk(const std::vector<std::string>& entries) {
  std::string chunk;
  for (const std::string& e : entries) chunk += Field(1, e);
  return Field(3, chunk);
}

// What a reading left: whether it was taken, and then the message's kind,
// ids and the keys a snapshot of it holds.
struct Outcome {
  bool parsed = false;  // the message parsed
  bool taken = false;   // and its chunk's entries were taken
  bool chunk = false;
  std::string text;  // the message but its chunk, as text
  int message_case = 0;
  std::string store_id, session;
  std::vector<std::string> keys, disabled;

  bool operator==(const Outcome& o) const {
    return parsed == o.parsed && taken == o.taken && chunk == o.chunk && text == o.text &&
           message_case == o.message_case && store_id == o.store_id && session == o.session &&
           keys == o.keys && disabled == o.disabled;
  }
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  os << "{parsed " << o.parsed << ", taken " << o.taken << ", " << o.text << ", chunk " << o.chunk
     << ", case " << o.message_case << ", " << o.keys.size() << " keys, " << o.disabled.size()
     << " disabled}";
  return os;
}

Outcome Snapshot(KeySet::Builder& builder, Outcome out) {
  KeySet keys;
  keys.Replace(builder);
  out.keys = keys.Dump();
  out.disabled = keys.DisabledProjects();
  return out;
}

Outcome InPlace(const std::string& bytes) {
  Outcome out;
  WatchMessage msg;
  if (!ParseWatchMessage(grpc::Slice(bytes), msg)) return out;
  out.parsed = true;
  out.text = msg.response().ShortDebugString();
  KeySet::Builder builder;
  for (size_t i = 0; i < msg.chunk_parts(); ++i) {
    if (!AddSnapshotChunk(msg.chunk_part(i), builder).ok()) return out;
  }
  out.taken = true;
  out.chunk = msg.is_snapshot_chunk();
  out.message_case =
      msg.is_snapshot_chunk() ? v1::WatchResponse::kSnapshotChunk : msg.response().message_case();
  out.store_id = msg.response().store_id();
  out.session = msg.response().session();
  return Snapshot(builder, out);
}

Outcome Parsed(const std::string& bytes) {
  Outcome out;
  v1::WatchResponse msg;
  if (!msg.ParseFromString(bytes)) return out;
  out.parsed = true;
  v1::WatchResponse but_chunk = msg;
  but_chunk.clear_snapshot_chunk();
  out.text = but_chunk.ShortDebugString();
  KeySet::Builder builder;
  for (const v1::KeyEntry& e : msg.snapshot_chunk().entries()) {
    if (!builder.Add(e).ok()) return out;
  }
  for (const std::string& p : msg.snapshot_chunk().disabled_project_ids()) {
    if (!builder.AddDisabledProject(p).ok()) return out;
  }
  out.taken = true;
  out.chunk = msg.has_snapshot_chunk();
  out.message_case = msg.message_case();
  out.store_id = msg.store_id();
  out.session = msg.session();
  return Snapshot(builder, out);
}

// Both readings of `bytes`, which must agree; returns the one outcome.
Outcome Read(const std::string& bytes) {
  const Outcome parsed = Parsed(bytes);
  const Outcome in_place = InPlace(bytes);
  REQUIRE(in_place == parsed);
  return in_place;
}

TEST_CASE("a snapshot chunk read in place holds what protobuf's parse of it holds") {
  std::mt19937 rng(7);
  v1::WatchResponse msg;
  msg.set_store_id("st_chunk");
  msg.set_session("ses_chunk");
  const std::string disabled = GenerateProjectId();
  for (int i = 0; i < 3000; ++i) {
    const std::string value = GenerateKey(i % 3 == 0 ? v1::SECRET_KEY : v1::API_KEY);
    v1::KeyEntry& e = *msg.mutable_snapshot_chunk()->add_entries();
    e.set_digest(Sha256Bytes(value));
    e.set_key_id(GenerateKeyId());
    e.set_project_id(i % 10 == 0 ? disabled : GenerateProjectId());
    e.set_kind(ParseKey(value));
    e.set_state(i % 4 == 0 ? v1::KEY_STATE_REVOKED : v1::KEY_STATE_ACTIVE);
    if (i % 5 == 0) {
      *e.mutable_expire_time() = ToProto(absl::FromUnixMicros(1900000000000000 + rng() % 1000));
    }
  }
  msg.mutable_snapshot_chunk()->add_disabled_project_ids(disabled);
  const Outcome read = Read(msg.SerializeAsString());
  CHECK(read.taken);
  CHECK(read.chunk);
  CHECK(read.keys.size() == 3000);
  CHECK(read.disabled == std::vector<std::string>{disabled});
  CHECK(read.store_id == "st_chunk");
  CHECK(read.session == "ses_chunk");
}

TEST_CASE("messages other than chunks are protobuf's, as before") {
  v1::WatchResponse msg;
  msg.set_store_id("st_x");
  msg.mutable_event()->set_revision(8);
  Outcome read = Read(msg.SerializeAsString());
  CHECK(read.message_case == v1::WatchResponse::kEvent);
  msg.mutable_progress()->set_head_revision(9);
  read = Read(msg.SerializeAsString());
  CHECK(read.message_case == v1::WatchResponse::kProgress);
  read = Read("");
  CHECK(read.taken);
  CHECK(read.message_case == v1::WatchResponse::MESSAGE_NOT_SET);
}

TEST_CASE("a chunk is read as protobuf merges and replaces the fields of a message") {
  const Entry a, b;
  SECTION("a chunk sent in two parts is their merge") {
    const Outcome read = Read(Chunk({a.Fields()}) + Field(6, "ses") + Chunk({b.Fields()}));
    CHECK(read.keys.size() == 2);
    CHECK(read.session == "ses");
  }
  SECTION("another member of the oneof after a chunk drops it, and the reverse") {
    const std::string event = Field(2, VarintField(1, 8));
    CHECK(Read(Chunk({a.Fields()}) + event).message_case == v1::WatchResponse::kEvent);
    const Outcome read = Read(event + Chunk({a.Fields()}));
    CHECK(read.chunk);
    CHECK(read.keys.size() == 1);
  }
  SECTION("a chunk drops the member before it: one of the same kind after it starts anew") {
    const Outcome read = Read(Field(2, VarintField(1, 5)) + Field(3, "") + Field(2, ""));
    CHECK(read.message_case == v1::WatchResponse::kEvent);
    CHECK(read.text == "event { }");  // revision 0, not 5
  }
  SECTION("a member a chunk drops must still parse") {
    CHECK_FALSE(Read(Field(2, Tag(1, 0)) + Field(3, "")).parsed);
  }
  SECTION("a dropped chunk must still parse") {
    std::string bad = a.Fields();
    bad.pop_back();
    CHECK_FALSE(Read(Chunk({bad}) + Field(2, VarintField(1, 8))).taken);
  }
  SECTION("the last of a repeated scalar wins; a repeated message field merges") {
    const std::string fields = a.Fields() + VarintField(4, v1::SECRET_KEY) +
                               Field(6, VarintField(1, 2000000000)) + Field(6, VarintField(2, 5));
    const Outcome read = Read(Chunk({fields}));
    REQUIRE(read.keys.size() == 1);
    CHECK(read.keys[0].find(" 2 ") != std::string::npos);  // kind SECRET_KEY
  }
  SECTION("an enum is the low 32 bits of its varint") {
    CHECK(Read(Chunk({a.Fields() + VarintField(4, (uint64_t{1} << 32) | v1::API_KEY)})).taken);
  }
  SECTION("a known field of another wire type is an unknown field") {
    CHECK(Read(Chunk({a.Fields() + Field(4, "x")})).taken);
  }
  SECTION("unknown fields of every wire type are skipped, groups too") {
    const std::string unknown = VarintField(90, 1) + Tag(91, 1) + "12345678" + Field(92, "x") +
                                Tag(93, 3) + VarintField(1, 1) + Tag(93, 4) + Tag(94, 5) + "1234";
    const Outcome read = Read(unknown + Chunk({a.Fields() + unknown}));
    CHECK(read.keys.size() == 1);
  }
}

TEST_CASE("bytes protobuf would not parse are refused, in the chunk and around it") {
  const Entry a;
  const std::string good = Chunk({a.Fields()});
  REQUIRE(Read(good).taken);
  std::string truncated = good;
  truncated.pop_back();
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"truncated", truncated},
      {"a length past the end", Tag(3, 2) + Varint(1000) + "x"},
      {"a length in six bytes", Tag(3, 2) + std::string("\x80\x80\x80\x80\x80\x00", 6)},
      {"a tag of 0", good + std::string(1, '\0')},
      {"an end of a group never begun", Chunk({a.Fields() + Tag(7, 4)})},
      {"wire type 6", Chunk({a.Fields() + Tag(7, 6)})},
      {"field 0", Chunk({a.Fields() + Tag(0, 0) + Varint(1)})},
      {"a group ended by another field's end", Chunk({a.Fields() + Tag(7, 3) + Tag(8, 4)})},
      {"a group never ended", Chunk({a.Fields() + Tag(7, 3)})},
      {"a varint of eleven bytes",
       Chunk({a.Fields() + Tag(4, 0) + std::string(10, '\x81') + "\x01"})},
      {"a key id that is not UTF-8, then one that is", Chunk({Field(2, "\xff") + a.Fields()})},
      {"a project id that is not UTF-8", Chunk({a.Fields() + Field(3, "\xc3")})},
  };
  for (const auto& [what, bytes] : cases) {
    INFO(what);
    CHECK_FALSE(Read(bytes).parsed);  // the read fails, as protobuf's does
  }
}

TEST_CASE("groups nest as deep as protobuf lets them, and no deeper") {
  const Entry a;
  // Inside an entry (three levels in), groups `n` deep.
  auto nested = [&](int n) {
    std::string g;
    for (int i = 0; i < n; ++i) g += Tag(7, 3);
    for (int i = 0; i < n; ++i) g += Tag(7, 4);
    return Chunk({a.Fields() + g});
  };
  CHECK(Read(nested(98)).taken);
  CHECK_FALSE(Read(nested(99)).taken);
}

TEST_CASE("an entry the key set would refuse is refused in place too") {
  const Entry a;
  REQUIRE(Read(Chunk({a.Fields() + Field(1, "short")})).parsed);  // parsed, then refused
  CHECK_FALSE(Read(Chunk({a.Fields() + Field(1, "short")})).taken);
  CHECK_FALSE(Read(Chunk({a.Fields() + Field(2, "key_!")})).taken);
  CHECK_FALSE(Read(Chunk({a.Fields() + VarintField(5, 9)})).taken);
  CHECK_FALSE(Read(Field(3, Field(2, "prj_bad"))).taken);
}

}  // namespace
}  // namespace latchkey
