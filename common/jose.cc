#include "common/jose.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "common/strings.h"

namespace latchkey {

namespace {

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  std::string out;
  if (text.find('=') != std::string_view::npos ||
      !absl::WebSafeBase64Unescape(absl::string_view(text.data(), text.size()), &out)) {
    return std::nullopt;
  }
  return out;
}

std::optional<nlohmann::json> JsonObject(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

// A string member of `j`; empty when absent or not a string (nlohmann's
// value() would throw on a member of another type).
std::string Str(const nlohmann::json& j, const char* name, std::string fallback = "") {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// A member of `jwk` that is a base64url string, decoded.
std::optional<std::string> Member(const nlohmann::json& jwk, const char* name) {
  auto it = jwk.find(name);
  if (it == jwk.end() || !it->is_string()) return std::nullopt;
  return Base64UrlDecode(it->get<std::string>());
}

struct ParamsDeleter {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
  void operator()(BIGNUM* n) const { BN_free(n); }
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};
template <typename T>
using Owned = std::unique_ptr<T, ParamsDeleter>;

// An EVP_PKEY of `type` ("RSA", "EC") made from public parameters.
EVP_PKEY* FromParams(const char* type, OSSL_PARAM_BLD* bld) {
  Owned<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(bld));
  Owned<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (params == nullptr || ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return nullptr;
  }
  return pkey;
}

EVP_PKEY* RsaKey(const std::string& n, const std::string& e) {
  Owned<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  Owned<BIGNUM> bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                               static_cast<int>(n.size()), nullptr));
  Owned<BIGNUM> bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                               static_cast<int>(e.size()), nullptr));
  if (bld == nullptr || bn_n == nullptr || bn_e == nullptr ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return nullptr;
  }
  return FromParams("RSA", bld.get());
}

EVP_PKEY* P256Key(const std::string& x, const std::string& y) {
  // An uncompressed point: 0x04 || x || y.
  const std::string point = StrCat(std::string(1, '\x04'), x, y);
  Owned<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return nullptr;
  }
  return FromParams("EC", bld.get());
}

// A JWS ES256 signature (r || s, 32 bytes each) as the DER OpenSSL verifies.
std::optional<std::string> EcdsaDer(std::string_view raw) {
  if (raw.size() != 64) return std::nullopt;
  Owned<ECDSA_SIG> sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

}  // namespace

absl::StatusOr<Jwt> ParseJwt(std::string_view token) {
  std::vector<std::string> parts =
      absl::StrSplit(absl::string_view(token.data(), token.size()), '.');
  if (parts.size() != 3) return absl::InvalidArgumentError("not three dot-separated parts");
  std::optional<std::string> header = Base64UrlDecode(parts[0]);
  std::optional<std::string> payload = Base64UrlDecode(parts[1]);
  std::optional<std::string> signature = Base64UrlDecode(parts[2]);
  if (!header || !payload || !signature) return absl::InvalidArgumentError("not base64url");
  std::optional<nlohmann::json> h = JsonObject(*header);
  std::optional<nlohmann::json> c = JsonObject(*payload);
  if (!h || !c) return absl::InvalidArgumentError("header or payload is not a JSON object");
  return Jwt{*std::move(h), *std::move(c), StrCat(parts[0], ".", parts[1]), *std::move(signature)};
}

absl::StatusOr<std::shared_ptr<const PublicKey>> PublicKey::FromJwk(const nlohmann::json& jwk) {
  if (!jwk.is_object()) return absl::InvalidArgumentError("a JWK is a JSON object");
  const std::string kty = Str(jwk, "kty");
  EVP_PKEY* pkey = nullptr;
  std::string alg;
  if (kty == "RSA") {
    std::optional<std::string> n = Member(jwk, "n");
    std::optional<std::string> e = Member(jwk, "e");
    if (!n || !e) return absl::InvalidArgumentError("an RSA JWK needs n and e");
    // Under 2048 bits RSA is not a signature anyone should accept.
    if (n->size() < 256) return absl::InvalidArgumentError("RSA key shorter than 2048 bits");
    pkey = RsaKey(*n, *e);
    alg = "RS256";
  } else if (kty == "EC") {
    std::optional<std::string> x = Member(jwk, "x");
    std::optional<std::string> y = Member(jwk, "y");
    if (Str(jwk, "crv") != "P-256" || !x || !y || x->size() != 32 || y->size() != 32) {
      return absl::InvalidArgumentError("an EC JWK must be on P-256, with x and y");
    }
    pkey = P256Key(*x, *y);
    alg = "ES256";
  } else {
    return absl::InvalidArgumentError(StrCat("key type \"", kty, "\" is not RSA or EC"));
  }
  if (pkey == nullptr) return absl::InvalidArgumentError(StrCat("not a valid ", kty, " key"));
  return std::shared_ptr<const PublicKey>(new PublicKey(pkey, std::move(alg)));
}

PublicKey::~PublicKey() { EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey_)); }

bool PublicKey::Verifies(std::string_view data, std::string_view signature) const {
  std::string der;
  if (alg_ == "ES256") {
    std::optional<std::string> converted = EcdsaDer(signature);
    if (!converted) return false;
    der = *std::move(converted);
    signature = der;
  }
  Owned<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  return ctx != nullptr &&
         EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                              static_cast<EVP_PKEY*>(pkey_)) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                          data.size()) == 1;
}

absl::StatusOr<std::map<std::string, std::shared_ptr<const PublicKey>>> ParseJwks(
    std::string_view document) {
  std::optional<nlohmann::json> jwks = JsonObject(document);
  if (!jwks || !jwks->contains("keys") || !(*jwks)["keys"].is_array()) {
    return absl::InvalidArgumentError("a JWKS is {\"keys\": [...]}");
  }
  std::map<std::string, std::shared_ptr<const PublicKey>> keys;
  for (const nlohmann::json& jwk : (*jwks)["keys"]) {
    if (!jwk.is_object() || Str(jwk, "use", "sig") != "sig") continue;
    absl::StatusOr<std::shared_ptr<const PublicKey>> key = PublicKey::FromJwk(jwk);
    if (!key.ok()) continue;  // a kind this verifier does not use
    // A key that names its algorithm is used with that one only.
    if (jwk.contains("alg") && Str(jwk, "alg") != (*key)->algorithm()) continue;
    keys[Str(jwk, "kid")] = *std::move(key);
  }
  return keys;
}

std::string Base64UrlEncode(std::string_view bytes) {
  std::string out;
  absl::WebSafeBase64Escape(absl::string_view(bytes.data(), bytes.size()), &out);
  return out;
}

}  // namespace latchkey
