// The token of an "authorization: Bearer <token>" value, read the same way by
// the authority (gRPC metadata) and the console (HTTP header).
#ifndef LATCHKEY_COMMON_BEARER_H_
#define LATCHKEY_COMMON_BEARER_H_

#include <optional>
#include <string_view>

#include "absl/strings/match.h"

namespace latchkey {

// "Bearer " (in any case) and a token of visible ASCII, 16 KiB in all at
// most (an OIDC ID token listing many groups runs to a few KiB); anything else
// carries no token: it cannot be one of ours, and it must not reach gRPC
// metadata, which refuses control characters.
inline std::optional<std::string_view> BearerToken(std::string_view authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  constexpr size_t kMaxChars = 16 * 1024;
  if (authorization.size() <= kBearer.size() || authorization.size() > kMaxChars ||
      !absl::EqualsIgnoreCase(absl::string_view(authorization.data(), kBearer.size()),
                              absl::string_view(kBearer.data(), kBearer.size()))) {
    return std::nullopt;
  }
  const std::string_view token = authorization.substr(kBearer.size());
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) return std::nullopt;
  }
  return token;
}

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_BEARER_H_
