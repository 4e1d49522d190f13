// An OIDC issuer for the authority's and the console's tests: an HTTP server
// on a free loopback port serving a discovery document and a JWKS, ID tokens
// signed with its keys (RS256 or ES256) or, on purpose, wrongly, and the
// authorization code flow (/authorize approves at once as the user a test
// set; /token checks the PKCE verifier and the client secret, and refreshes).
// The browser tests use a real provider (npm's oidc-provider); this one lets
// a test choose every claim and see every request.
#ifndef LATCHKEY_TESTS_TESTING_TEST_ISSUER_H_
#define LATCHKEY_TESTS_TESTING_TEST_ISSUER_H_

#include <httplib.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/http.h"
#include "common/jose.h"
#include "common/mutex.h"

namespace latchkey::testing {

class TestIssuer {
 public:
  TestIssuer() {
    server_.Get("/.well-known/openid-configuration", [this](const httplib::Request&,
                                                            httplib::Response& res) {
      nlohmann::json doc = {{"issuer", url()},
                            {"jwks_uri", url() + "/jwks"},
                            {"authorization_endpoint", url() + "/authorize"},
                            {"token_endpoint", url() + "/token"},
                            {"id_token_signing_alg_values_supported", {"RS256", "ES256"}}};
      res.set_content(doc.dump(), "application/json");
    });
    server_.Get("/jwks", [this](const httplib::Request&, httplib::Response& res) {
      MutexLock lock(&mu_);
      ++jwks_requests_;
      nlohmann::json keys = nlohmann::json::array();
      for (const auto& [kid, key] : keys_) keys.push_back(Jwk(kid, key.get()));
      res.set_content(nlohmann::json{{"keys", keys}}.dump(), "application/json");
    });
    server_.Get("/authorize", [this](const httplib::Request& req, httplib::Response& res) {
      Authorize(req, res);
    });
    server_.Post("/token",
                 [this](const httplib::Request& req, httplib::Response& res) { Token(req, res); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = ServeInBackground(&server_);
  }
  ~TestIssuer() {
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // A new signing key ("RS256": RSA 2048; "ES256": P-256), listed in the
  // JWKS from now on; returns its kid.
  std::string AddKey(const std::string& alg) {
    EVP_PKEY* pkey = alg == "ES256" ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
    MutexLock lock(&mu_);
    std::string kid = alg + "-" + std::to_string(++kids_);
    keys_[kid] = Pkey(pkey);
    return kid;
  }
  // The key leaves the JWKS (a rotation); Sign still signs with it.
  void DropKey(const std::string& kid) {
    MutexLock lock(&mu_);
    dropped_[kid] = std::move(keys_[kid]);
    keys_.erase(kid);
  }
  int jwks_requests() {
    MutexLock lock(&mu_);
    return jwks_requests_;
  }

  // Who /authorize signs in, and how long the ID tokens /token issues last.
  void SetUser(const std::string& email, std::vector<std::string> groups = {}) {
    MutexLock lock(&mu_);
    user_ = email;
    groups_ = std::move(groups);
  }
  void SetIdTokenTtl(absl::Duration ttl) {
    MutexLock lock(&mu_);
    ttl_ = ttl;
  }
  // Refresh tokens stop working (the person was signed out at the provider).
  void RefuseRefresh() {
    MutexLock lock(&mu_);
    refresh_tokens_.clear();
  }
  // /token also serves kClientId as a public client (PKCE alone, no secret),
  // as a provider does for a CLI.
  void AllowPublicClient() {
    MutexLock lock(&mu_);
    public_client_ = true;
  }
  int token_requests(const std::string& grant_type) {
    MutexLock lock(&mu_);
    return grants_[grant_type];
  }
  static constexpr char kClientId[] = "latchkey-console";
  static constexpr char kClientSecret[] = "console-secret";

  // Claims as a provider issues them to `audience` for a person.
  nlohmann::json Claims(const std::string& audience, const std::string& email,
                        std::vector<std::string> groups = {},
                        absl::Duration ttl = absl::Hours(1)) const {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    return {{"iss", url()},
            {"aud", audience},
            {"sub", "sub-" + email},
            {"email", email},
            {"groups", groups},
            {"iat", now},
            {"exp", now + absl::ToInt64Seconds(ttl)}};
  }

  // `claims` signed with key `kid` (its alg; or `alg` when given, which
  // then does not match the key).
  std::string Sign(const nlohmann::json& claims, const std::string& kid, std::string alg = "") {
    MutexLock lock(&mu_);
    EVP_PKEY* key = keys_.count(kid) ? keys_[kid].get() : dropped_[kid].get();
    const bool ec = EVP_PKEY_is_a(key, "EC");
    if (alg.empty()) alg = ec ? "ES256" : "RS256";
    const std::string input =
        Encode({{"alg", alg}, {"kid", kid}, {"typ", "JWT"}}) + "." + Encode(claims);
    return input + "." + Base64UrlEncode(SignBytes(key, input, ec));
  }
  // An unsigned token ("alg": "none"), as an attacker would send one.
  static std::string Unsigned(const nlohmann::json& claims) {
    return Encode({{"alg", "none"}, {"typ", "JWT"}}) + "." + Encode(claims) + ".";
  }

 private:
  struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  };
  using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

  static std::string Encode(const nlohmann::json& j) { return Base64UrlEncode(j.dump()); }

  static std::string Bn(EVP_PKEY* key, const char* name) {
    BIGNUM* bn = nullptr;
    EVP_PKEY_get_bn_param(key, name, &bn);
    std::string out(BN_num_bytes(bn), '\0');
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
    BN_free(bn);
    return out;
  }

  static nlohmann::json Jwk(const std::string& kid, EVP_PKEY* key) {
    if (EVP_PKEY_is_a(key, "EC")) {
      unsigned char point[65];
      size_t len = 0;
      EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &len);
      const std::string p(reinterpret_cast<char*>(point), len);
      return {{"kty", "EC"},
              {"crv", "P-256"},
              {"kid", kid},
              {"use", "sig"},
              {"alg", "ES256"},
              {"x", Base64UrlEncode(p.substr(1, 32))},
              {"y", Base64UrlEncode(p.substr(33, 32))}};
    }
    return {{"kty", "RSA"},
            {"kid", kid},
            {"use", "sig"},
            {"alg", "RS256"},
            {"n", Base64UrlEncode(Bn(key, OSSL_PKEY_PARAM_RSA_N))},
            {"e", Base64UrlEncode(Bn(key, OSSL_PKEY_PARAM_RSA_E))}};
  }

  // PKCS#1 v1.5 for RSA; for EC, the DER signature turned into r || s.
  static std::string SignBytes(EVP_PKEY* key, const std::string& data, bool ec) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t len = 0;
    EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key);
    EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                   data.size());
    std::string sig(len, '\0');
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(data.data()), data.size());
    EVP_MD_CTX_free(ctx);
    sig.resize(len);
    if (!ec) return sig;
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* parsed = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(parsed), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(parsed), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(parsed);
    return raw;
  }

  static std::string Form(const httplib::Request& req, const char* name) {
    return req.has_param(name) ? req.get_param_value(name) : "";
  }

  void Authorize(const httplib::Request& req, httplib::Response& res) {
    if (Form(req, "client_id") != kClientId || Form(req, "response_type") != "code" ||
        Form(req, "code_challenge_method") != "S256" || Form(req, "code_challenge").empty()) {
      res.status = 400;
      return;
    }
    MutexLock lock(&mu_);
    const std::string code = "code-" + std::to_string(++codes_issued_);
    codes_[code] = {Form(req, "nonce"), Form(req, "code_challenge"), Form(req, "redirect_uri")};
    res.set_redirect(Form(req, "redirect_uri") + "?code=" + code + "&state=" + Form(req, "state"));
  }

  void Token(const httplib::Request& req, httplib::Response& res) {
    std::string basic;
    const std::string header = req.get_header_value("Authorization");
    if (header.size() > 6) absl::Base64Unescape(header.substr(6), &basic);
    MutexLock lock(&mu_);
    const std::string grant = Form(req, "grant_type");
    ++grants_[grant];
    auto refuse = [&res](const char* error) {
      res.status = 400;
      res.set_content(nlohmann::json{{"error", error}}.dump(), "application/json");
    };
    const bool as_public = public_client_ && header.empty() && Form(req, "client_id") == kClientId;
    if (!as_public && basic != std::string(kClientId) + ":" + kClientSecret) {
      return refuse("invalid_client");
    }
    std::string nonce;
    if (grant == "authorization_code") {
      auto it = codes_.find(Form(req, "code"));
      if (it == codes_.end()) return refuse("invalid_grant");
      const Code code = it->second;
      codes_.erase(it);  // once
      if (Base64UrlEncode(Sha256Bytes(Form(req, "code_verifier"))) != code.challenge ||
          Form(req, "redirect_uri") != code.redirect_uri) {
        return refuse("invalid_grant");
      }
      nonce = code.nonce;
    } else if (grant == "refresh_token") {
      if (refresh_tokens_.erase(Form(req, "refresh_token")) == 0) return refuse("invalid_grant");
    } else {
      return refuse("unsupported_grant_type");
    }
    nlohmann::json claims = Claims(kClientId, user_, groups_, ttl_);
    if (!nonce.empty()) claims["nonce"] = nonce;
    const std::string refresh = "refresh-" + std::to_string(++codes_issued_);
    refresh_tokens_.insert(refresh);
    EVP_PKEY* key = keys_.begin()->second.get();
    const bool ec = EVP_PKEY_is_a(key, "EC");
    const std::string input =
        Encode({{"alg", ec ? "ES256" : "RS256"}, {"kid", keys_.begin()->first}}) + "." +
        Encode(claims);
    const std::string id_token = input + "." + Base64UrlEncode(SignBytes(key, input, ec));
    res.set_content(nlohmann::json{{"id_token", id_token},
                                   {"refresh_token", refresh},
                                   {"access_token", "at-" + refresh},
                                   {"token_type", "Bearer"},
                                   {"expires_in", absl::ToInt64Seconds(ttl_)}}
                        .dump(),
                    "application/json");
  }

  struct Code {
    std::string nonce, challenge, redirect_uri;
  };

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  Mutex mu_;
  int kids_ ABSL_GUARDED_BY(mu_) = 0;
  int jwks_requests_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Pkey> keys_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Pkey> dropped_ ABSL_GUARDED_BY(mu_);
  std::string user_ ABSL_GUARDED_BY(mu_) = "alice@example.com";
  std::vector<std::string> groups_ ABSL_GUARDED_BY(mu_);
  absl::Duration ttl_ ABSL_GUARDED_BY(mu_) = absl::Hours(1);
  int codes_issued_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Code> codes_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> refresh_tokens_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> grants_ ABSL_GUARDED_BY(mu_);
  bool public_client_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace latchkey::testing

#endif  // LATCHKEY_TESTS_TESTING_TEST_ISSUER_H_
