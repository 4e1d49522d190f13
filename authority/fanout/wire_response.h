// A WatchResponse encoded once, for every stream that sends it.
//
// The hub encodes each committed event and each progress tick once; every
// watch stream then writes the same bytes (gRPC byte buffers share their
// slices by reference count), so fanning a revision out to 10,000 streams
// builds no protobuf per stream. A stream's first message also carries its
// session: that is the shared bytes plus a small encoded suffix, because a
// protobuf message followed by another of the same type parses as their
// merge (docs/design.md, "Each event encoded once").
#ifndef LATCHKEY_AUTHORITY_FANOUT_WIRE_RESPONSE_H_
#define LATCHKEY_AUTHORITY_FANOUT_WIRE_RESPONSE_H_

#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "latchkey/v1/key_sync.pb.h"

namespace latchkey {

// Immutable once made, so safe for concurrent use from multiple threads.
class WireResponse {
 public:
  // Encodes `message`.
  static std::shared_ptr<const WireResponse> Encode(const v1::WatchResponse& message);
  // A WatchResponse of `store_id` holding `chunk`, an encoded
  // v1::SnapshotChunk, as it is: neither parsed nor copied.
  static std::shared_ptr<const WireResponse> EncodeSnapshotChunk(std::string_view store_id,
                                                                 std::string chunk);

  // The event's revision; 0 when the message is not an event.
  uint64_t event_revision() const { return event_revision_; }
  bool is_progress() const { return kind_ == v1::WatchResponse::kProgress; }
  bool is_snapshot_end() const { return kind_ == v1::WatchResponse::kSnapshotEnd; }
  // The encoded message; copies share its memory.
  const grpc::ByteBuffer& bytes() const { return bytes_; }
  size_t size() const { return bytes_.Length(); }

  // The same message with WatchResponse.session set to `session`: this one's
  // bytes, shared, followed by the session's few bytes.
  std::shared_ptr<const WireResponse> WithSession(std::string_view session) const;

  // The message itself, parsed back (tests). Empty if the bytes do not parse,
  // which bytes made here always do.
  v1::WatchResponse Decode() const { return Decode(bytes_); }
  static v1::WatchResponse Decode(const grpc::ByteBuffer& bytes);

 private:
  // Takes `bytes`' contents, leaving it empty.
  WireResponse(grpc::ByteBuffer* bytes, uint64_t event_revision,
               v1::WatchResponse::MessageCase kind)
      : event_revision_(event_revision), kind_(kind) {
    bytes_.Swap(bytes);
  }

  grpc::ByteBuffer bytes_;  // never changed after construction
  const uint64_t event_revision_;
  const v1::WatchResponse::MessageCase kind_;
};

using SharedResponse = std::shared_ptr<const WireResponse>;

// Parses `bytes` (a message as gRPC carries it) into `out`; false when they
// are not one. The raw KeySync methods read their requests with it.
bool ParseWire(const grpc::ByteBuffer& bytes, google::protobuf::MessageLite& out);

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_FANOUT_WIRE_RESPONSE_H_
