// A WatchResponse as the sync client reads it, with snapshot chunks decoded
// where they lie.
//
// A first sync is a million keys in chunks of about 6,500. Parsed by
// protobuf, each key is a KeyEntry and three strings allocated, then freed
// when the next message is parsed: two fifths of a sidecar's CPU in a first
// sync went to malloc and free. So the sync client's stream reads a
// WatchMessage (gRPC calls ParseWatchMessage through the SerializationTraits
// below): every field but a snapshot chunk is parsed by protobuf as before,
// and a chunk stays bytes, which AddSnapshotChunk decodes into the key set's
// builder, each entry's fields as views into those bytes.
//
// Both take exactly what protobuf takes as a v1::WatchResponse (unknown fields
// skipped, the last of a repeated scalar kept, string fields valid UTF-8, a
// chunk sent in several parts merged, nesting no deeper than protobuf's limit);
// tests/fuzz/watch_apply_fuzz.cc holds the two to the same answers on any
// bytes.
#ifndef LATCHKEY_SIDECAR_WATCH_MESSAGE_H_
#define LATCHKEY_SIDECAR_WATCH_MESSAGE_H_

#include <grpcpp/impl/serialization_traits.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "latchkey/v1/key_sync.pb.h"
#include "sidecar/key_set.h"

namespace latchkey {

class WatchMessage {
 public:
  // Everything but a snapshot chunk's contents: for a chunk, the store id and
  // session with no member of the oneof set.
  const v1::WatchResponse& response() const { return response_; }
  bool is_snapshot_chunk() const { return is_chunk_; }
  // A chunk's parts (usually one), each an encoded v1::SnapshotChunk; the
  // chunk is their merge. Views into this message, valid while it is.
  size_t chunk_parts() const { return chunk_parts_.size(); }
  std::string_view chunk_part(size_t i) const;

  void Swap(WatchMessage* other);

 private:
  friend bool ParseWatchMessage(grpc::Slice bytes, WatchMessage& out);

  v1::WatchResponse response_;
  bool is_chunk_ = false;
  grpc::Slice bytes_;
  // Each part's offset in bytes_ and size. Not views: a small slice keeps its
  // bytes inside itself, and moves with Swap.
  std::vector<std::pair<size_t, size_t>> chunk_parts_;
};

// Parses `bytes`, one encoded v1::WatchResponse, into `out`; false when
// protobuf would not parse them as one.
bool ParseWatchMessage(grpc::Slice bytes, WatchMessage& out);

// Adds what `part`, an encoded v1::SnapshotChunk, holds to `builder`: its
// entries and disabled projects, in the order they were sent, each checked as
// Builder::Add(const v1::KeyEntry&) and AddDisabledProject check them.
// INVALID_ARGUMENT at the first entry refused, with what came before it
// added. ParseWatchMessage has checked the part parses.
absl::Status AddSnapshotChunk(std::string_view part, KeySet::Builder& builder);

}  // namespace latchkey

// How gRPC reads a WatchMessage off the wire. The sync client only receives
// them; it never sends one.
template <>
class grpc::SerializationTraits<latchkey::WatchMessage, void> {
 public:
  static grpc::Status Serialize(const latchkey::WatchMessage&, grpc::ByteBuffer*, bool*) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "a WatchMessage is never sent");
  }
  static grpc::Status Deserialize(grpc::ByteBuffer* buffer, latchkey::WatchMessage* msg);
};

#endif  // LATCHKEY_SIDECAR_WATCH_MESSAGE_H_
