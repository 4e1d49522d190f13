// JSON Web Tokens, as an OpenID Connect provider signs ID tokens (RFC 7515,
// 7517, 7519): a compact JWS split and parsed, and a JSON Web Key set turned
// into OpenSSL public keys that check RS256 and ES256 signatures. Only those
// two algorithms exist here: "none" and the HMAC ones cannot be asked for.
#ifndef LATCHKEY_COMMON_JOSE_H_
#define LATCHKEY_COMMON_JOSE_H_

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace latchkey {

// A JWS in compact form, split and its parts decoded; nothing verified yet.
struct Jwt {
  nlohmann::json header;      // {"alg", "kid", ...}
  nlohmann::json claims;      // the payload
  std::string signing_input;  // base64url(header) "." base64url(payload)
  std::string signature;      // raw bytes
};

// INVALID_ARGUMENT for anything but three base64url parts joined by dots
// whose first two are JSON objects.
absl::StatusOr<Jwt> ParseJwt(std::string_view token);

// A public key from a JWKS: RSA (for RS256) or EC on P-256 (for ES256).
// Immutable; safe for concurrent use.
class PublicKey {
 public:
  // INVALID_ARGUMENT for a JWK that is not an RSA or P-256 EC public key.
  static absl::StatusOr<std::shared_ptr<const PublicKey>> FromJwk(const nlohmann::json& jwk);
  ~PublicKey();
  PublicKey(const PublicKey&) = delete;
  PublicKey& operator=(const PublicKey&) = delete;

  // The JWS algorithm this key signs with: "RS256" or "ES256".
  const std::string& algorithm() const { return alg_; }
  // Whether `signature` (as a JWS carries it: PKCS#1 v1.5 for RS256, r||s
  // for ES256) signs `data` with this key under algorithm().
  bool Verifies(std::string_view data, std::string_view signature) const;

 private:
  PublicKey(void* pkey, std::string alg) : pkey_(pkey), alg_(std::move(alg)) {}
  void* const pkey_;  // EVP_PKEY*, kept out of this header
  const std::string alg_;
};

// A JWKS document's usable signing keys by "kid"; keys of other types, or
// marked for encryption ("use": "enc"), are left out. INVALID_ARGUMENT when
// the document is not {"keys": [...]}.
absl::StatusOr<std::map<std::string, std::shared_ptr<const PublicKey>>> ParseJwks(
    std::string_view document);

// base64url without padding (RFC 4648 section 5), as JOSE writes it.
std::string Base64UrlEncode(std::string_view bytes);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_JOSE_H_
