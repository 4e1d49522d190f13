#include "sidecar/batch_codec.h"

#include <cstdint>

#include "common/key_format.h"
#include "common/strings.h"
#include "sidecar/wire_reader.h"

namespace latchkey {
namespace {

using wire::kLengthDelimited;
using wire::kVarint;

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

}  // namespace

absl::Status ParseBatchRequest(std::string_view bytes, size_t max_keys,
                               std::vector<std::string_view>* keys) {
  // Field 1 holds the keys; anything else is skipped, as protobuf skips a
  // field it does not know. Keys are not checked to be UTF-8, as protobuf
  // would check them: one that is not is MALFORMED, like any other key that
  // is not a key, rather than its whole batch refused.
  wire::Reader r(bytes);
  while (!r.done()) {
    uint32_t tag;
    if (!wire::NextTag(r, tag)) return Malformed("bad field tag");
    if (tag == ((v1::ValidateBatchRequest::kKeysFieldNumber << 3) | kLengthDelimited)) {
      std::string_view key;
      if (!r.Bytes(key)) return Malformed("truncated or oversized key");
      if (keys->size() >= max_keys) {
        return absl::InvalidArgumentError(
            StrCat("a batch holds at most ", max_keys, " keys; got more"));
      }
      keys->push_back(key);
    } else if (!r.Skip(tag, wire::kRecursionLimit)) {
      return Malformed("bad unknown field");
    }
  }
  return absl::OkStatus();
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
