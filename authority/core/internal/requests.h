// Request checks shared by every KeyAdmin method: names, ids, paging.
#ifndef LATCHKEY_AUTHORITY_CORE_INTERNAL_REQUESTS_H_
#define LATCHKEY_AUTHORITY_CORE_INTERNAL_REQUESTS_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace latchkey::internal {

inline constexpr int kDefaultPageSize = 50;
inline constexpr int kMaxPageSize = 1000;
inline constexpr size_t kMaxNameChars = 100;

// OK for valid UTF-8 of 1 to 100 characters (code points) with no control
// characters and not only spaces; INVALID_ARGUMENT naming `field` otherwise.
absl::Status CheckName(std::string_view name, std::string_view field);

// OK for UTF-8 of at most `max_bytes` with no control characters: free text
// from outside (a leak report's URL) that a stored record will hold.
// INVALID_ARGUMENT naming `field` otherwise.
absl::Status CheckText(std::string_view text, std::string_view field, size_t max_bytes);

// INVALID_ARGUMENT unless `id` has the given prefix and length.
absl::Status CheckId(std::string_view id, std::string_view prefix, size_t random_chars,
                     std::string_view field);

// 0 -> default, above max -> max, negative -> INVALID_ARGUMENT.
absl::StatusOr<int> PageSize(int requested);

// Page tokens are opaque to clients: base64url of where the listing stopped
// and which listing (`scope`) it belongs to. A token from another listing,
// or garbage, is INVALID_ARGUMENT. An empty token decodes to "" (the start).
std::string EncodePageToken(std::string_view scope, std::string_view after);
absl::StatusOr<std::string> DecodePageToken(std::string_view token, std::string_view scope);

}  // namespace latchkey::internal

#endif  // LATCHKEY_AUTHORITY_CORE_INTERNAL_REQUESTS_H_
