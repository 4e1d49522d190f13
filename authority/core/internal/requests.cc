#include "authority/core/internal/requests.h"

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "authority/internal/records.pb.h"
#include "common/key_format.h"
#include "common/strings.h"
#include "google/protobuf/stubs/common.h"

namespace latchkey::internal {

absl::Status CheckText(std::string_view text, std::string_view field, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(StrCat(field, " is over ", max_bytes, " bytes"));
  }
  if (!google::protobuf::internal::IsStructurallyValidUTF8(text.data(),
                                                           static_cast<int>(text.size()))) {
    return absl::InvalidArgumentError(StrCat(field, " must be UTF-8 text"));
  }
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(StrCat(field, " must not hold control characters"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckName(std::string_view name, std::string_view field) {
  // Protobuf's own rule: a proto3 string that is not UTF-8 serializes, but
  // the record holding it would never parse back.
  if (!google::protobuf::internal::IsStructurallyValidUTF8(name.data(),
                                                           static_cast<int>(name.size()))) {
    return absl::InvalidArgumentError(StrCat(field, " must be UTF-8 text"));
  }
  size_t chars = 0;
  bool blank = true;
  for (unsigned char c : name) {
    if ((c & 0xC0) != 0x80) ++chars;  // count code points, not bytes
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(StrCat(field, " must not hold control characters"));
    }
    if (c != ' ') blank = false;
  }
  if (chars == 0 || blank) return absl::InvalidArgumentError(StrCat(field, " is required"));
  if (chars > kMaxNameChars) {
    return absl::InvalidArgumentError(
        StrCat(field, " is ", chars, " characters; the limit is ", kMaxNameChars));
  }
  return absl::OkStatus();
}

absl::Status CheckId(std::string_view id, std::string_view prefix, size_t random_chars,
                     std::string_view field) {
  if (id.empty()) return absl::InvalidArgumentError(StrCat(field, " is required"));
  if (!IsWellFormedId(id, prefix, random_chars)) {
    return absl::InvalidArgumentError(
        StrCat(field, " must look like ", prefix, "<", random_chars, " base62 characters>"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> PageSize(int requested) {
  if (requested < 0) return absl::InvalidArgumentError("page_size must not be negative");
  if (requested == 0) return kDefaultPageSize;
  return std::min(requested, kMaxPageSize);
}

std::string EncodePageToken(std::string_view scope, std::string_view after) {
  PageToken token;
  token.set_scope(std::string(scope));
  token.set_after(std::string(after));
  return absl::WebSafeBase64Escape(token.SerializeAsString());
}

absl::StatusOr<std::string> DecodePageToken(std::string_view token, std::string_view scope) {
  if (token.empty()) return std::string();
  std::string raw;
  PageToken decoded;
  if (token.size() > 4096 ||
      !absl::WebSafeBase64Unescape(absl::string_view(token.data(), token.size()), &raw) ||
      !decoded.ParseFromString(raw) || decoded.scope() != scope || decoded.after().empty()) {
    return absl::InvalidArgumentError("page_token is not one this listing returned");
  }
  return decoded.after();
}

}  // namespace latchkey::internal
