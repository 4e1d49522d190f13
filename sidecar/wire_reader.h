// Protobuf's wire format read in place, for the two messages the sidecar
// decodes by hand (sidecar/batch_codec.cc, sidecar/watch_message.cc) to spare
// an allocation per key. Each read takes exactly what protobuf's parser (3.21,
// google/protobuf/parse_context.h) takes and returns false where it would
// fail; tests/sidecar/batch_codec_test.cc, tests/sidecar/watch_message_test.cc
// and the watch_apply fuzz target (tests/fuzz) hold it to protobuf.
#ifndef LATCHKEY_SIDECAR_WIRE_READER_H_
#define LATCHKEY_SIDECAR_WIRE_READER_H_

#include <google/protobuf/stubs/common.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace latchkey::wire {

// Protobuf's wire types.
constexpr uint32_t kVarint = 0;
constexpr uint32_t kFixed64 = 1;
constexpr uint32_t kLengthDelimited = 2;
constexpr uint32_t kStartGroup = 3;
constexpr uint32_t kEndGroup = 4;
constexpr uint32_t kFixed32 = 5;

// How deep protobuf lets messages and groups nest: its default recursion
// limit, which gRPC's parsing keeps, counted down at each message or group
// entered.
constexpr int kRecursionLimit = 100;

// A reader over one message's bytes.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : at_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  bool done() const { return at_ == end_; }
  const char* at() const { return at_; }

  // Up to ten bytes; bits past the 64th are dropped.
  bool Varint(uint64_t& out) { return VarintOf(10, out); }

  // A field's tag: up to five bytes; bits past the 32nd are dropped.
  bool Tag(uint32_t& out) {
    uint64_t tag;
    if (!VarintOf(5, tag)) return false;
    out = static_cast<uint32_t>(tag);
    return true;
  }

  // A length-delimited field's bytes. The length takes up to five bytes and
  // stays under 2 GiB.
  bool Bytes(std::string_view& out) {
    uint64_t size = 0;
    for (int i = 0;; ++i) {
      if (at_ == end_) return false;
      const uint8_t b = static_cast<uint8_t>(*at_++);
      if (i == 4 && b >= 8) return false;
      size |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if (b < 0x80) break;
    }
    if (size > static_cast<uint64_t>(end_ - at_)) return false;
    out = std::string_view(at_, size);
    at_ += size;
    return true;
  }

  // A string field's bytes: protobuf checks proto3 strings are UTF-8.
  bool String(std::string_view& out) {
    return Bytes(out) && google::protobuf::internal::IsStructurallyValidUTF8(
                             out.data(), static_cast<int>(out.size()));
  }

  // Skips a field kept as unknown, `depth` the nesting left where it is.
  bool Skip(uint32_t tag, int depth) {
    const uint32_t field = tag >> 3;
    if (field == 0) return false;
    switch (tag & 7) {
      case kVarint: {
        uint64_t ignored;
        return Varint(ignored);
      }
      case kFixed64:
        return Advance(8);
      case kLengthDelimited: {
        std::string_view ignored;
        return Bytes(ignored);
      }
      case kStartGroup:
        if (--depth < 0) return false;
        for (;;) {
          uint32_t inner;
          if (done() || !Tag(inner)) return false;
          if (inner == 0) return false;
          if ((inner & 7) == kEndGroup) return inner == ((field << 3) | kEndGroup);
          if (!Skip(inner, depth)) return false;
        }
      case kFixed32:
        return Advance(4);
      default:  // an end of a group never begun, or no wire type at all
        return false;
    }
  }

 private:
  bool VarintOf(int max_bytes, uint64_t& out) {
    out = 0;
    for (int i = 0; i < max_bytes; ++i) {
      if (at_ == end_) return false;
      const uint8_t b = static_cast<uint8_t>(*at_++);
      out |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if (b < 0x80) return true;
    }
    return false;
  }

  bool Advance(size_t n) {
    if (n > static_cast<size_t>(end_ - at_)) return false;
    at_ += n;
    return true;
  }

  const char* at_;
  const char* const end_;
};

// The next field's tag in a message's body (not a group's): a tag of 0 or
// the end of a group there fails protobuf's parse.
inline bool NextTag(Reader& r, uint32_t& tag) {
  if (!r.Tag(tag)) return false;
  return tag != 0 && (tag & 7) != kEndGroup;  // both end a message where a group should
}

}  // namespace latchkey::wire

#endif  // LATCHKEY_SIDECAR_WIRE_READER_H_
