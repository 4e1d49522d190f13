// WireResponse on its own: the bytes are the message, and a session suffix
// shares them instead of copying.
#include "authority/fanout/wire_response.h"

#include <google/protobuf/util/message_differencer.h>

#include <catch2/catch.hpp>
#include <vector>

namespace latchkey {
namespace {

v1::WatchResponse Event(uint64_t revision) {
  v1::WatchResponse m;
  m.set_store_id("st_wire");
  m.mutable_event()->set_revision(revision);
  v1::KeyEntry* entry = m.mutable_event()->add_upserts();
  entry->set_digest(std::string(32, '\x5a'));
  entry->set_key_id("key_1");
  entry->set_project_id("prj_1");
  return m;
}

bool Same(const v1::WatchResponse& a, const v1::WatchResponse& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

// Where each slice of `bytes` starts in memory.
std::vector<const uint8_t*> SliceStarts(const grpc::ByteBuffer& bytes) {
  std::vector<grpc::Slice> slices;
  REQUIRE(bytes.Dump(&slices).ok());
  std::vector<const uint8_t*> starts;
  for (const grpc::Slice& s : slices) starts.push_back(s.begin());
  return starts;
}

TEST_CASE("an encoded response is the message, and says what it carries") {
  const v1::WatchResponse event = Event(42);
  SharedResponse wire = WireResponse::Encode(event);
  CHECK(Same(wire->Decode(), event));
  CHECK(wire->event_revision() == 42);
  CHECK_FALSE(wire->is_progress());
  CHECK(wire->size() == event.ByteSizeLong());

  v1::WatchResponse progress;
  progress.set_store_id("st_wire");
  progress.mutable_progress()->set_head_revision(7);
  SharedResponse tick = WireResponse::Encode(progress);
  CHECK(tick->is_progress());
  CHECK(tick->event_revision() == 0);
  CHECK(Same(tick->Decode(), progress));
}

TEST_CASE("a session rides as a suffix that shares the encoded message") {
  const v1::WatchResponse event = Event(9);
  SharedResponse wire = WireResponse::Encode(event);
  SharedResponse first = wire->WithSession("ses_abc");

  v1::WatchResponse expected = event;
  expected.set_session("ses_abc");
  CHECK(Same(first->Decode(), expected));
  CHECK(first->event_revision() == 9);
  // The shared message is unchanged, and the first message's leading bytes
  // are the very same memory: nothing was copied.
  CHECK(Same(wire->Decode(), event));
  const std::vector<const uint8_t*> shared = SliceStarts(wire->bytes());
  const std::vector<const uint8_t*> with_session = SliceStarts(first->bytes());
  REQUIRE(shared.size() == 1);
  REQUIRE(with_session.size() == 2);
  CHECK(with_session[0] == shared[0]);
}

TEST_CASE("an encoded snapshot chunk is taken as it is, and parses as the chunk it holds") {
  v1::SnapshotChunk chunk;
  for (int i = 0; i < 300; ++i) {  // past 127 bytes: a length of several bytes
    v1::KeyEntry* e = chunk.add_entries();
    e->set_digest(std::string(32, static_cast<char>(i)));
    e->set_key_id("key_" + std::to_string(i));
  }
  for (const v1::SnapshotChunk& c : {chunk, v1::SnapshotChunk()}) {
    const std::string bytes = c.SerializeAsString();
    SharedResponse r = WireResponse::EncodeSnapshotChunk("st_wire", bytes);
    v1::WatchResponse want;
    want.set_store_id("st_wire");
    *want.mutable_snapshot_chunk() = c;
    CHECK(Same(r->Decode(), want));
    CHECK(r->Decode().has_snapshot_chunk());
    CHECK(r->size() == want.ByteSizeLong());
    CHECK(r->event_revision() == 0);
    CHECK_FALSE(r->is_snapshot_end());
    CHECK_FALSE(r->is_progress());
  }
  // The chunk's bytes are the ones handed in, not a copy of them.
  std::string bytes = chunk.SerializeAsString();
  const char* data = bytes.data();
  SharedResponse r = WireResponse::EncodeSnapshotChunk("st_wire", std::move(bytes));
  std::vector<grpc::Slice> slices;
  REQUIRE(r->bytes().Dump(&slices).ok());
  REQUIRE(slices.size() == 2);
  CHECK(reinterpret_cast<const char*>(slices[1].begin()) == data);
}

TEST_CASE("bytes that are not a WatchResponse decode to an empty message") {
  const std::string garbage("\xff\xff\xff\xff", 4);
  grpc::Slice slice(garbage);
  grpc::ByteBuffer bytes(&slice, 1);
  CHECK(WireResponse::Decode(bytes).ByteSizeLong() == 0);
}

}  // namespace
}  // namespace latchkey
