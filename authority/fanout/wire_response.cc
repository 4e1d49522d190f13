#include "authority/fanout/wire_response.h"

#include <grpc/slice.h>
#include <grpcpp/support/slice.h>

#include <cstring>
#include <string>
#include <vector>

namespace latchkey {
namespace {

// `message` serialized straight into a slice of its own.
grpc::Slice SliceOf(const v1::WatchResponse& message) {
  const size_t size = message.ByteSizeLong();
  grpc_slice slice = grpc_slice_malloc(size);
  message.SerializeWithCachedSizesToArray(GRPC_SLICE_START_PTR(slice));
  return grpc::Slice(slice, grpc::Slice::STEAL_REF);
}

}  // namespace

std::shared_ptr<const WireResponse> WireResponse::Encode(const v1::WatchResponse& message) {
  grpc::Slice slice = SliceOf(message);
  grpc::ByteBuffer bytes(&slice, 1);
  const uint64_t revision = message.has_event() ? message.event().revision() : 0;
  return std::shared_ptr<const WireResponse>(
      new WireResponse(&bytes, revision, message.message_case()));
}

std::shared_ptr<const WireResponse> WireResponse::EncodeSnapshotChunk(std::string_view store_id,
                                                                      std::string chunk) {
  // The store id, then the chunk field's tag and length: a slice of their own.
  v1::WatchResponse head;
  head.set_store_id(std::string(store_id));
  std::string prefix = head.SerializeAsString();
  prefix.push_back(static_cast<char>((v1::WatchResponse::kSnapshotChunkFieldNumber << 3) | 2));
  for (size_t n = chunk.size();;) {
    const unsigned char low = n & 0x7f;
    n >>= 7;
    prefix.push_back(static_cast<char>(n == 0 ? low : low | 0x80));
    if (n == 0) break;
  }
  std::vector<grpc::Slice> slices;
  slices.emplace_back(prefix);
  if (!chunk.empty()) {
    // The chunk itself is not copied: the slice owns the string until gRPC
    // and every stream are done with it.
    auto* owned = new std::string(std::move(chunk));
    grpc_slice body = grpc_slice_new_with_user_data(
        owned->data(), owned->size(), [](void* s) { delete static_cast<std::string*>(s); }, owned);
    slices.emplace_back(body, grpc::Slice::STEAL_REF);
  }
  grpc::ByteBuffer bytes(slices.data(), slices.size());
  return std::shared_ptr<const WireResponse>(
      new WireResponse(&bytes, 0, v1::WatchResponse::kSnapshotChunk));
}

std::shared_ptr<const WireResponse> WireResponse::WithSession(std::string_view session) const {
  std::vector<grpc::Slice> slices;
  if (!bytes_.Dump(&slices).ok()) slices.clear();  // an empty buffer has nothing to share
  v1::WatchResponse suffix;
  suffix.set_session(std::string(session));
  slices.push_back(SliceOf(suffix));
  grpc::ByteBuffer bytes(slices.data(), slices.size());
  return std::shared_ptr<const WireResponse>(new WireResponse(&bytes, event_revision_, kind_));
}

v1::WatchResponse WireResponse::Decode(const grpc::ByteBuffer& bytes) {
  v1::WatchResponse message;
  if (!ParseWire(bytes, message)) message.Clear();
  return message;
}

bool ParseWire(const grpc::ByteBuffer& bytes, google::protobuf::MessageLite& out) {
  grpc::Slice flat;
  return bytes.DumpToSingleSlice(&flat).ok() &&
         out.ParseFromArray(flat.begin(), static_cast<int>(flat.size()));
}

}  // namespace latchkey
