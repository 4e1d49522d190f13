#include "sidecar/watch_message.h"

#include <cstdint>
#include <utility>

#include "sidecar/wire_reader.h"

namespace latchkey {
namespace {

using wire::kEndGroup;
using wire::kLengthDelimited;
using wire::kRecursionLimit;
using wire::kVarint;
using wire::NextTag;

// A WatchResponse is at the top of the nesting protobuf allows; a snapshot
// chunk is one in.
constexpr int kChunkDepth = kRecursionLimit - 1;

// The oneof members of v1::WatchResponse other than the chunk.
constexpr uint32_t kEventField = v1::WatchResponse::kEventFieldNumber;
constexpr uint32_t kChunkField = v1::WatchResponse::kSnapshotChunkFieldNumber;
constexpr uint32_t kEndField = v1::WatchResponse::kSnapshotEndFieldNumber;
constexpr uint32_t kProgressField = v1::WatchResponse::kProgressFieldNumber;

// Fields 1 and 2 of a google.protobuf.Timestamp, read into the entry's
// expiry; a later occurrence of the field overrides only what it holds.
bool DecodeTimestamp(std::string_view bytes, int depth, KeySet::EntryFields& e) {
  if (--depth < 0) return false;
  wire::Reader r(bytes);
  while (!r.done()) {
    uint32_t tag;
    if (!NextTag(r, tag)) return false;
    uint64_t v;
    if (tag == ((1 << 3) | kVarint)) {
      if (!r.Varint(v)) return false;
      e.expire_seconds = static_cast<int64_t>(v);
    } else if (tag == ((2 << 3) | kVarint)) {
      if (!r.Varint(v)) return false;
      e.expire_nanos = static_cast<int32_t>(static_cast<uint32_t>(v));
    } else if (!r.Skip(tag, depth)) {
      return false;
    }
  }
  return true;
}

// One v1::KeyEntry.
bool DecodeEntry(std::string_view bytes, int depth, KeySet::EntryFields& e) {
  if (--depth < 0) return false;
  wire::Reader r(bytes);
  while (!r.done()) {
    uint32_t tag;
    if (!NextTag(r, tag)) return false;
    const uint32_t field = tag >> 3;
    const bool delimited = (tag & 7) == kLengthDelimited;
    const bool varint = (tag & 7) == kVarint;
    uint64_t v;
    if (field == v1::KeyEntry::kDigestFieldNumber && delimited) {
      if (!r.Bytes(e.digest)) return false;
    } else if (field == v1::KeyEntry::kKeyIdFieldNumber && delimited) {
      if (!r.String(e.key_id)) return false;
    } else if (field == v1::KeyEntry::kProjectIdFieldNumber && delimited) {
      if (!r.String(e.project_id)) return false;
    } else if (field == v1::KeyEntry::kKindFieldNumber && varint) {
      if (!r.Varint(v)) return false;
      e.kind = static_cast<int32_t>(static_cast<uint32_t>(v));  // an enum is an int32
    } else if (field == v1::KeyEntry::kStateFieldNumber && varint) {
      if (!r.Varint(v)) return false;
      e.state = static_cast<int32_t>(static_cast<uint32_t>(v));
    } else if (field == v1::KeyEntry::kExpireTimeFieldNumber && delimited) {
      std::string_view ts;
      e.has_expire_time = true;
      if (!r.Bytes(ts) || !DecodeTimestamp(ts, depth, e)) return false;
    } else if (!r.Skip(tag, depth)) {
      return false;
    }
  }
  return true;
}

// One part of a v1::SnapshotChunk: each entry to `on_entry`, each disabled
// project to `on_disabled`, in order. INVALID_ARGUMENT where protobuf would
// not parse it, or the first error either returns.
template <typename OnEntry, typename OnDisabled>
absl::Status DecodeChunk(std::string_view part, OnEntry on_entry, OnDisabled on_disabled) {
  const absl::Status malformed = absl::InvalidArgumentError("malformed snapshot chunk");
  wire::Reader r(part);
  while (!r.done()) {
    uint32_t tag;
    if (!NextTag(r, tag)) return malformed;
    const uint32_t field = tag >> 3;
    std::string_view bytes;
    if (field == v1::SnapshotChunk::kEntriesFieldNumber && (tag & 7) == kLengthDelimited) {
      KeySet::EntryFields entry;
      if (!r.Bytes(bytes) || !DecodeEntry(bytes, kChunkDepth, entry)) return malformed;
      if (absl::Status s = on_entry(entry); !s.ok()) return s;
    } else if (field == v1::SnapshotChunk::kDisabledProjectIdsFieldNumber &&
               (tag & 7) == kLengthDelimited) {
      if (!r.String(bytes)) return malformed;
      if (absl::Status s = on_disabled(bytes); !s.ok()) return s;
    } else if (!r.Skip(tag, kChunkDepth)) {
      return malformed;
    }
  }
  return absl::OkStatus();
}

// Whether protobuf would parse `part` as a SnapshotChunk.
bool ChunkParses(std::string_view part) {
  auto ignore = [](const auto&) { return absl::OkStatus(); };
  return DecodeChunk(part, ignore, ignore).ok();
}

}  // namespace

void WatchMessage::Swap(WatchMessage* other) {
  response_.Swap(&other->response_);
  std::swap(is_chunk_, other->is_chunk_);
  std::swap(bytes_, other->bytes_);
  chunk_parts_.swap(other->chunk_parts_);
}

std::string_view WatchMessage::chunk_part(size_t i) const {
  const auto [offset, size] = chunk_parts_[i];
  return std::string_view(reinterpret_cast<const char*>(bytes_.begin()) + offset, size);
}

bool ParseWatchMessage(grpc::Slice bytes, WatchMessage& out) {
  out.bytes_ = std::move(bytes);
  out.is_chunk_ = false;
  out.chunk_parts_.clear();
  const std::string_view all(reinterpret_cast<const char*>(out.bytes_.begin()), out.bytes_.size());
  // The top level's fields in order. A chunk (field 3) is set aside as bytes
  // and everything else is left to protobuf, under protobuf's rules for a
  // oneof: a chunk drops the member before it, and another member drops the
  // chunk before it. What is dropped was parsed all the same, so it must
  // parse.
  std::string rest;  // the fields left to protobuf, once a chunk was set aside
  bool set_aside = false;
  // Where the oneof members left to protobuf are: in `rest` once a chunk was
  // set aside, in `all` (where `rest` begins) before.
  std::vector<std::pair<size_t, size_t>> members;
  wire::Reader r(all);
  while (!r.done()) {
    const char* start = r.at();
    uint32_t tag;
    if (!NextTag(r, tag)) return false;
    const uint32_t field = tag >> 3;
    const bool delimited = (tag & 7) == kLengthDelimited;
    if (field == kChunkField && delimited) {
      std::string_view part;
      if (!r.Bytes(part)) return false;
      if (!set_aside) rest.assign(all.data(), start - all.data());
      set_aside = true;
      for (auto it = members.rbegin(); it != members.rend(); ++it) {  // from the back
        v1::WatchResponse dropped;
        if (!dropped.ParseFromArray(rest.data() + it->first, static_cast<int>(it->second))) {
          return false;
        }
        rest.erase(it->first, it->second);
      }
      members.clear();
      out.is_chunk_ = true;
      out.chunk_parts_.emplace_back(part.data() - all.data(), part.size());
      continue;
    }
    const bool member =
        delimited && (field == kEventField || field == kEndField || field == kProgressField);
    if (member) {
      for (size_t i = 0; i < out.chunk_parts_.size(); ++i) {
        if (!ChunkParses(out.chunk_part(i))) return false;
      }
      out.is_chunk_ = false;
      out.chunk_parts_.clear();
    }
    if (!r.Skip(tag, kRecursionLimit)) return false;
    const size_t at = set_aside ? rest.size() : static_cast<size_t>(start - all.data());
    if (set_aside) rest.append(start, r.at() - start);
    if (member) members.emplace_back(at, r.at() - start);
  }
  for (size_t i = 0; i < out.chunk_parts_.size(); ++i) {
    if (!ChunkParses(out.chunk_part(i))) return false;
  }
  const std::string_view fields = set_aside ? std::string_view(rest) : all;
  return out.response_.ParseFromArray(fields.data(), static_cast<int>(fields.size()));
}

absl::Status AddSnapshotChunk(std::string_view part, KeySet::Builder& builder) {
  return DecodeChunk(
      part, [&](const KeySet::EntryFields& e) { return builder.Add(e); },
      [&](std::string_view project) { return builder.AddDisabledProject(project); });
}

}  // namespace latchkey

grpc::Status grpc::SerializationTraits<latchkey::WatchMessage, void>::Deserialize(
    grpc::ByteBuffer* buffer, latchkey::WatchMessage* msg) {
  grpc::Slice bytes;
  // A message that arrived in one slice is shared, not copied; one in many
  // (most chunks) is joined into one.
  if (buffer->Valid() && buffer->Length() > 0 && !buffer->TrySingleSlice(&bytes).ok()) {
    if (grpc::Status dumped = buffer->DumpToSingleSlice(&bytes); !dumped.ok()) return dumped;
  }
  buffer->Clear();
  if (!latchkey::ParseWatchMessage(std::move(bytes), *msg)) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "a watch message that does not parse");
  }
  return grpc::Status::OK;
}
