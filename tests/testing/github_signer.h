// A signing key as GitHub's secret scanning holds one: it signs report bodies
// (ECDSA P-256 over SHA-256, base64 DER) and publishes its public half under
// an identifier. For the tests and the bench of authority/rpc/secret_scanning.h.
#ifndef LATCHKEY_TESTS_TESTING_GITHUB_SIGNER_H_
#define LATCHKEY_TESTS_TESTING_GITHUB_SIGNER_H_

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "absl/strings/escaping.h"

namespace latchkey::testing {

inline void OpenSslCheck(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("OpenSSL: ") + what);
}

// The PEM SubjectPublicKeyInfo of `key`.
inline std::string PublicPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  OpenSslCheck(bio != nullptr && PEM_write_bio_PUBKEY(bio, key) == 1, "PEM_write_bio_PUBKEY");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, size);
  BIO_free(bio);
  return pem;
}

class GitHubSigner {
 public:
  explicit GitHubSigner(std::string id) : id_(std::move(id)), key_(EVP_EC_gen("P-256")) {
    OpenSslCheck(key_ != nullptr, "EVP_EC_gen");
  }
  ~GitHubSigner() { EVP_PKEY_free(key_); }
  GitHubSigner(const GitHubSigner&) = delete;
  GitHubSigner& operator=(const GitHubSigner&) = delete;

  const std::string& id() const { return id_; }

  // One entry of GitHub's public_keys document, as JSON text.
  std::string PublishedKey(bool current = true) const {
    return nlohmann::json{
        {"key_identifier", id_}, {"key", PublicPem(key_)}, {"is_current", current}}
        .dump();
  }
  // GitHub's whole document with this key alone.
  std::string KeysDocument() const { return "{\"public_keys\": [" + PublishedKey() + "]}"; }

  // Base64 of the DER ECDSA signature over SHA-256 of `body`: the
  // Github-Public-Key-Signature header.
  std::string Sign(const std::string& body) const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    const auto* in = reinterpret_cast<const unsigned char*>(body.data());
    size_t size = 0;
    OpenSslCheck(ctx != nullptr &&
                     EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key_) == 1 &&
                     EVP_DigestSign(ctx, nullptr, &size, in, body.size()) == 1,
                 "EVP_DigestSign");
    std::string der(size, '\0');
    const bool signed_ok = EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(der.data()), &size,
                                          in, body.size()) == 1;
    EVP_MD_CTX_free(ctx);
    OpenSslCheck(signed_ok, "EVP_DigestSign");
    der.resize(size);
    return absl::Base64Escape(der);
  }

 private:
  const std::string id_;
  EVP_PKEY* const key_;
};

}  // namespace latchkey::testing

#endif  // LATCHKEY_TESTS_TESTING_GITHUB_SIGNER_H_
