// Key, token and id formats (docs/design.md, "Key format").
//
//   API key     lkp_ + 32 random base62 chars + 6-char checksum
//   secret key  lks_ + 32 random base62 chars + 6-char checksum
//   token       lkt_ + 32 random base62 chars + 6-char checksum (principal tokens)
//   key id      key_ + 16 random base62 chars
//   project id  prj_ + 12 random base62 chars
//
// The checksum is CRC-32 (zlib) of everything before it, in base62, most
// significant digit first, left-padded with '0'. It catches typos and lets
// scanners recognise leaked keys; it authenticates nothing.
//
// All functions are thread-safe. Randomness comes from OpenSSL's RAND_bytes.
#ifndef LATCHKEY_COMMON_KEY_FORMAT_H_
#define LATCHKEY_COMMON_KEY_FORMAT_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "latchkey/v1/resources.pb.h"

namespace latchkey {

inline constexpr std::string_view kApiKeyPrefix = "lkp_";
inline constexpr std::string_view kSecretKeyPrefix = "lks_";
inline constexpr std::string_view kTokenPrefix = "lkt_";
inline constexpr std::string_view kKeyIdPrefix = "key_";
inline constexpr std::string_view kProjectIdPrefix = "prj_";
inline constexpr std::string_view kPrincipalIdPrefix = "prn_";

inline constexpr size_t kSecretRandomChars = 32;
inline constexpr size_t kChecksumChars = 6;
inline constexpr size_t kKeyLength = 4 + kSecretRandomChars + kChecksumChars;  // 42
inline constexpr size_t kKeyIdRandomChars = 16;
inline constexpr size_t kProjectIdRandomChars = 12;
inline constexpr size_t kPrincipalIdRandomChars = 12;

// The 62 characters of keys, ids and checksums, in digit order.
inline constexpr std::string_view kBase62Alphabet =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// True when every character of `s` is in kBase62Alphabet. One table read per
// character and no branch: the sidecar runs it on every key and on hostile
// input.
bool AllBase62(std::string_view s);

// `n` characters from 0-9A-Za-z, uniformly distributed.
std::string RandomBase62(size_t n);

// The 6-char checksum of `body` (prefix and random part).
std::string Checksum(std::string_view body);

// A new API key (kind API_KEY) or secret key (SECRET_KEY), checksum included.
std::string GenerateKey(v1::KeyKind kind);

// A new principal token.
std::string GenerateToken();

// `prefix` followed by `random_chars` random base62 characters.
std::string GenerateId(std::string_view prefix, size_t random_chars);
inline std::string GenerateKeyId() { return GenerateId(kKeyIdPrefix, kKeyIdRandomChars); }
inline std::string GenerateProjectId() {
  return GenerateId(kProjectIdPrefix, kProjectIdRandomChars);
}
inline std::string GeneratePrincipalId() {
  return GenerateId(kPrincipalIdPrefix, kPrincipalIdRandomChars);
}

// The kind of a well-formed key, or KEY_KIND_UNSPECIFIED when `key` fails the
// prefix, length, alphabet or checksum check. Does no lookup and never
// allocates, so it is safe to run on hostile input of any size.
v1::KeyKind ParseKey(std::string_view key);

// True when `token` has the token prefix, length, alphabet and checksum.
bool IsWellFormedToken(std::string_view token);

// True when `id` is `prefix` followed by exactly `random_chars` base62 chars.
bool IsWellFormedId(std::string_view id, std::string_view prefix, size_t random_chars);

// "lkp_3f…a9Qz": enough to recognise a key, never enough to use it.
std::string KeyHint(std::string_view key);

// "API key" or "secret key", for messages people read.
inline std::string_view KindName(v1::KeyKind kind) {
  return kind == v1::SECRET_KEY ? "secret key" : "API key";
}

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_KEY_FORMAT_H_
