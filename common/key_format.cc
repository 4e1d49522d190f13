#include "common/key_format.h"

#include <openssl/rand.h>
#include <zlib.h>

#include <array>
#include <cstdint>
#include <cstdlib>

namespace latchkey {
namespace {

constexpr std::array<bool, 256> kIsBase62 = [] {
  std::array<bool, 256> t{};
  for (char c : kBase62Alphabet) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

std::array<char, kChecksumChars> ChecksumChars(std::string_view body) {
  uint32_t crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
  std::array<char, kChecksumChars> out;
  out.fill('0');
  for (size_t i = kChecksumChars; i-- > 0 && crc > 0;) {
    out[i] = kBase62Alphabet[crc % 62];
    crc /= 62;
  }
  return out;
}

// True when `s` is prefix + random part + a checksum that matches.
bool HasValidChecksum(std::string_view s, std::string_view prefix) {
  if (s.size() != kKeyLength || s.substr(0, prefix.size()) != prefix) return false;
  if (!AllBase62(s.substr(prefix.size()))) return false;
  const size_t body_len = kKeyLength - kChecksumChars;
  const std::array<char, kChecksumChars> sum = ChecksumChars(s.substr(0, body_len));
  return std::string_view(sum.data(), sum.size()) == s.substr(body_len);
}

std::string WithChecksum(std::string_view prefix) {
  std::string s(prefix);
  s += RandomBase62(kSecretRandomChars);
  s += Checksum(s);
  return s;
}

}  // namespace

bool AllBase62(std::string_view s) {
  bool all = true;
  for (char c : s) all &= kIsBase62[static_cast<unsigned char>(c)];
  return all;
}

std::string RandomBase62(size_t n) {
  std::string out;
  out.reserve(n);
  std::array<unsigned char, 64> buf;
  while (out.size() < n) {
    if (RAND_bytes(buf.data(), buf.size()) != 1) {
      // A CSPRNG that cannot produce bytes leaves no safe way to make a key.
      std::abort();
    }
    for (unsigned char b : buf) {
      // 248 = 4 * 62: rejecting larger bytes keeps every character equally likely.
      if (b < 248 && out.size() < n) out.push_back(kBase62Alphabet[b % 62]);
    }
  }
  return out;
}

std::string Checksum(std::string_view body) {
  const std::array<char, kChecksumChars> sum = ChecksumChars(body);
  return std::string(sum.data(), sum.size());
}

std::string GenerateKey(v1::KeyKind kind) {
  return WithChecksum(kind == v1::SECRET_KEY ? kSecretKeyPrefix : kApiKeyPrefix);
}

std::string GenerateToken() { return WithChecksum(kTokenPrefix); }

std::string GenerateId(std::string_view prefix, size_t random_chars) {
  return std::string(prefix) + RandomBase62(random_chars);
}

v1::KeyKind ParseKey(std::string_view key) {
  if (HasValidChecksum(key, kApiKeyPrefix)) return v1::API_KEY;
  if (HasValidChecksum(key, kSecretKeyPrefix)) return v1::SECRET_KEY;
  return v1::KEY_KIND_UNSPECIFIED;
}

bool IsWellFormedToken(std::string_view token) { return HasValidChecksum(token, kTokenPrefix); }

bool IsWellFormedId(std::string_view id, std::string_view prefix, size_t random_chars) {
  return id.size() == prefix.size() + random_chars && id.substr(0, prefix.size()) == prefix &&
         AllBase62(id.substr(prefix.size()));
}

std::string KeyHint(std::string_view key) {
  if (key.size() != kKeyLength) return "";
  return std::string(key.substr(0, 6)) + "\u2026" + std::string(key.substr(kKeyLength - 4));
}

}  // namespace latchkey
