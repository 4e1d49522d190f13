#include "sidecar/batch_codec.h"

#include <cstdint>

#include "common/key_format.h"
#include "common/strings.h"

namespace latchkey {
namespace {

// Protobuf wire types.
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kStartGroup = 3, kEndGroup = 4,
                   kFixed32 = 5;

// Reads a base-128 varint at `*pos`; false when it is truncated or longer
// than 10 bytes.
bool ReadVarint(std::string_view wire, size_t* pos, uint64_t* value) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && *pos < wire.size(); shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(wire[(*pos)++]);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *value = v;
      return true;
    }
  }
  return false;
}

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void AppendTag(uint32_t field, uint32_t wire_type, std::string* out) {
  AppendVarint((field << 3) | wire_type, out);
}

absl::Status Malformed(std::string_view why) {
  return absl::InvalidArgumentError(StrCat("malformed ValidateBatchRequest: ", why));
}

// Reads fields from `*pos` until the end of `wire` (group == 0) or the end
// tag of group `group`; at the top level (depth 0) field 1 holds the keys.
absl::Status ParseFields(std::string_view wire, size_t* pos, uint64_t group, int depth,
                         size_t max_keys, std::vector<std::string_view>* keys) {
  constexpr int kMaxDepth = 100;  // protobuf's own recursion limit
  while (*pos < wire.size()) {
    uint64_t tag;
    if (!ReadVarint(wire, pos, &tag)) return Malformed("truncated tag");
    const uint64_t field = tag >> 3;
    const uint32_t type = static_cast<uint32_t>(tag & 7);
    if (field == 0 || field > 0x1fffffff) return Malformed("field number out of range");
    switch (type) {
      case kVarint: {
        uint64_t ignored;
        if (!ReadVarint(wire, pos, &ignored)) return Malformed("truncated varint");
        break;
      }
      case kFixed64:
      case kFixed32: {
        const size_t n = type == kFixed64 ? 8 : 4;
        if (wire.size() - *pos < n) return Malformed("truncated fixed-width field");
        *pos += n;
        break;
      }
      case kLengthDelimited: {
        uint64_t len;
        if (!ReadVarint(wire, pos, &len)) return Malformed("truncated length");
        if (len > wire.size() - *pos) return Malformed("length beyond the end");
        if (field == 1 && depth == 0) {
          if (keys->size() >= max_keys) {
            return absl::InvalidArgumentError(
                StrCat("a batch holds at most ", max_keys, " keys; got more"));
          }
          keys->push_back(wire.substr(*pos, len));
        }
        *pos += len;
        break;
      }
      case kStartGroup:  // an unknown field of a long-deprecated kind: skipped whole
        if (depth + 1 > kMaxDepth) return Malformed("groups nested too deep");
        if (absl::Status s = ParseFields(wire, pos, field, depth + 1, max_keys, keys); !s.ok()) {
          return s;
        }
        break;
      case kEndGroup:
        if (field != group) return Malformed("unmatched end of group");
        return absl::OkStatus();
      default:
        return Malformed("unsupported wire type");
    }
  }
  if (group != 0) return Malformed("unterminated group");
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseBatchRequest(std::string_view wire, size_t max_keys,
                               std::vector<std::string_view>* keys) {
  size_t pos = 0;
  return ParseFields(wire, &pos, 0, 0, max_keys, keys);
}

void AppendBatchResult(const Validation& v, std::string* out) {
  // The ValidateResponse in field order, defaults left out, as protobuf
  // writes it. Every part is short, so its length fits one varint byte.
  static_assert(v1::Verdict_ARRAYSIZE < 128 && v1::KeyKind_ARRAYSIZE < 128);
  static_assert(2 + 2 + 16 + 2 + 20 + 2 + 2 <= kMaxBatchResultBytes);
  char body[kMaxBatchResultBytes];
  size_t n = 0;
  auto put = [&](char c) { body[n++] = c; };
  if (v.verdict != v1::VERDICT_UNSPECIFIED) {
    put(static_cast<char>((1 << 3) | kVarint));
    put(static_cast<char>(v.verdict));
  }
  if (v.has_ids()) {
    put(static_cast<char>((2 << 3) | kLengthDelimited));
    put(static_cast<char>(kProjectIdPrefix.size() + v.packed_project_id.size()));
    for (char c : kProjectIdPrefix) put(c);
    for (char c : v.packed_project_id) put(c);
    put(static_cast<char>((3 << 3) | kLengthDelimited));
    put(static_cast<char>(kKeyIdPrefix.size() + v.packed_key_id.size()));
    for (char c : kKeyIdPrefix) put(c);
    for (char c : v.packed_key_id) put(c);
  }
  if (v.kind != v1::KEY_KIND_UNSPECIFIED) {
    put(static_cast<char>((4 << 3) | kVarint));
    put(static_cast<char>(v.kind));
  }
  AppendTag(1, kLengthDelimited, out);
  AppendVarint(n, out);
  out->append(body, n);
}

}  // namespace latchkey
