// Digests and sealing of stored secrets, on OpenSSL 3.
#ifndef LATCHKEY_COMMON_CRYPTO_H_
#define LATCHKEY_COMMON_CRYPTO_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace latchkey {

// SHA-256 of a key or token string. Keys are indexed by digest everywhere.
using Digest = std::array<uint8_t, 32>;

Digest Sha256(std::string_view data);

// The digest as a 32-byte string, the form stored and sent on the wire.
std::string Sha256Bytes(std::string_view data);
inline std::string_view AsBytes(const Digest& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

// Lowercase hex, for logs that must name a digest without naming the key.
std::string HexPrefix(std::string_view bytes, size_t n);

// Seals values with AES-256-GCM under a 32-byte master key: a random 96-bit
// nonce per value and caller-given associated data (the key id), so a sealed
// value copied onto another key's record fails to open. A Sealer is immutable
// and safe for concurrent use.
class Sealer {
 public:
  static constexpr size_t kKeyBytes = 32;

  // Reads the master key from `path`, creating it (mode 0600, random bytes)
  // when the file does not exist. A file of the wrong size, a link, or a file
  // others may read is FAILED_PRECONDITION (ReadPrivateFile, common/files.h).
  static absl::StatusOr<Sealer> LoadOrCreate(const std::string& path);
  // Reads the master key from `path`; a missing file is FAILED_PRECONDITION
  // (replicas share one key, so none may make its own).
  static absl::StatusOr<Sealer> Load(const std::string& path);

  explicit Sealer(std::array<uint8_t, kKeyBytes> key) : key_(key) {}

  // nonce (12) || ciphertext || tag (16).
  absl::StatusOr<std::string> Seal(std::string_view plaintext, std::string_view aad) const;

  // DATA_LOSS when the value or its associated data were tampered with.
  absl::StatusOr<std::string> Open(std::string_view sealed, std::string_view aad) const;

 private:
  std::array<uint8_t, kKeyBytes> key_;
};

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_CRYPTO_H_
