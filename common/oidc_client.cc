#include "common/oidc_client.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "common/crypto.h"
#include "common/http.h"
#include "common/jose.h"
#include "common/key_format.h"
#include "common/strings.h"

namespace latchkey {

namespace {

std::unique_ptr<httplib::Client> ClientFor(const HttpUrl& url, const std::string& ca_file,
                                           absl::Duration timeout) {
  auto client = std::make_unique<httplib::Client>(url.origin());
  const auto t = absl::ToChronoMicroseconds(timeout);
  client->set_connection_timeout(t);
  client->set_read_timeout(t);
  client->set_write_timeout(t);
  client->set_follow_location(false);
  if (!ca_file.empty()) client->set_ca_cert_path(ca_file.c_str());
  return client;
}

std::string StringMember(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

absl::StatusOr<HttpUrl> ProviderUrl(std::string_view url, std::string_view what) {
  absl::StatusOr<HttpUrl> parsed = ParseHttpUrl(url);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(StrCat(what, ": ", std::string(parsed.status().message())));
  }
  if (!parsed->tls && !parsed->local()) {
    return absl::InvalidArgumentError(
        StrCat(what, " must be https:// (http:// only on a loopback address)"));
  }
  return parsed;
}

std::string UrlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

absl::StatusOr<std::string> FetchUrl(std::string_view url, const std::string& ca_file,
                                     absl::Duration timeout) {
  absl::StatusOr<HttpUrl> parsed = ProviderUrl(url, "URL");
  if (!parsed.ok()) return absl::UnavailableError(std::string(parsed.status().message()));
  httplib::Result res = ClientFor(*parsed, ca_file, timeout)->Get(parsed->path);
  if (!res) {
    return absl::UnavailableError(
        StrCat("identity provider ", parsed->origin(), ": ", httplib::to_string(res.error())));
  }
  if (res->status != 200) {
    return absl::UnavailableError(
        StrCat("identity provider ", parsed->origin(), parsed->path, ": HTTP ", res->status));
  }
  return res->body;
}

absl::StatusOr<std::unique_ptr<OidcClient>> OidcClient::Create(OidcClientOptions options) {
  if (absl::StatusOr<HttpUrl> u = ProviderUrl(options.issuer_url, "the issuer URL"); !u.ok()) {
    return u.status();
  }
  if (absl::StatusOr<HttpUrl> u = ProviderUrl(options.redirect_url, "the redirect URL"); !u.ok()) {
    return u.status();
  }
  if (options.client_id.empty()) return absl::InvalidArgumentError("an OIDC client id is needed");
  return std::unique_ptr<OidcClient>(new OidcClient(std::move(options)));
}

absl::StatusOr<OidcClient::Endpoints> OidcClient::Discover() const {
  {
    MutexLock lock(&mu_);
    if (endpoints_) return *endpoints_;
  }
  std::string issuer = options_.issuer_url;
  while (absl::EndsWith(issuer, "/")) issuer.pop_back();
  absl::StatusOr<std::string> body = FetchUrl(StrCat(issuer, "/.well-known/openid-configuration"),
                                              options_.ca_file, options_.timeout);
  if (!body.ok()) return body.status();
  const nlohmann::json doc = nlohmann::json::parse(*body, nullptr, false);
  if (!doc.is_object() || StringMember(doc, "issuer") != options_.issuer_url) {
    return absl::UnavailableError("the discovery document is not the issuer's own");
  }
  Endpoints found{StringMember(doc, "authorization_endpoint"), StringMember(doc, "token_endpoint")};
  for (const std::string& url : {found.authorization, found.token}) {
    if (absl::StatusOr<HttpUrl> u = ProviderUrl(url, "a provider endpoint"); !u.ok()) {
      return absl::UnavailableError(std::string(u.status().message()));
    }
  }
  MutexLock lock(&mu_);
  endpoints_ = found;
  return found;
}

absl::StatusOr<AuthorizationRequest> OidcClient::Begin() const {
  absl::StatusOr<Endpoints> endpoints = Discover();
  if (!endpoints.ok()) return endpoints.status();
  AuthorizationRequest req;
  req.state = RandomBase62(32);
  req.nonce = RandomBase62(32);
  req.code_verifier = RandomBase62(64);  // RFC 7636: 43 to 128 unreserved characters
  const std::string challenge = Base64UrlEncode(Sha256Bytes(req.code_verifier));
  req.url =
      StrCat(endpoints->authorization, absl::StrContains(endpoints->authorization, "?") ? "&" : "?",
             "response_type=code&client_id=", UrlEncode(options_.client_id),
             "&redirect_uri=", UrlEncode(options_.redirect_url),
             "&scope=", UrlEncode(options_.scopes), "&state=", req.state, "&nonce=", req.nonce,
             "&code_challenge=", challenge, "&code_challenge_method=S256");
  // offline_access asks for a refresh token; OpenID Connect Core 11 says a
  // provider grants it only with consent asked for.
  if (absl::StrContains(options_.scopes, "offline_access")) req.url += "&prompt=consent";
  return req;
}

absl::StatusOr<OidcTokens> OidcClient::TokenRequest(
    const std::vector<std::pair<std::string, std::string>>& form,
    std::string_view expected_nonce) const {
  absl::StatusOr<Endpoints> endpoints = Discover();
  if (!endpoints.ok()) return endpoints.status();
  absl::StatusOr<HttpUrl> url = ParseHttpUrl(endpoints->token);
  if (!url.ok()) return url.status();
  std::string body;
  for (const auto& [name, value] : form) {
    body += StrCat(body.empty() ? "" : "&", name, "=", UrlEncode(value));
  }
  httplib::Headers headers;
  if (options_.client_secret.empty()) {
    body += "&client_id=" + UrlEncode(options_.client_id);
  } else {
    // client_secret_basic (RFC 6749 2.3.1): both parts form-encoded first.
    std::string basic;
    absl::Base64Escape(
        StrCat(UrlEncode(options_.client_id), ":", UrlEncode(options_.client_secret)), &basic);
    headers.emplace("Authorization", "Basic " + basic);
  }
  httplib::Result res = ClientFor(*url, options_.ca_file, options_.timeout)
                            ->Post(url->path, headers, body, "application/x-www-form-urlencoded");
  if (!res) {
    return absl::UnavailableError(
        StrCat("identity provider ", url->origin(), ": ", httplib::to_string(res.error())));
  }
  const nlohmann::json answer = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status != 200) {
    // RFC 6749 5.2: {"error": "invalid_grant", ...}; the code is safe to show.
    const std::string error = answer.is_object() ? StringMember(answer, "error") : "";
    const std::string why = StrCat("the identity provider refused (HTTP ", res->status,
                                   error.empty() ? "" : ", " + error.substr(0, 64), ")");
    return res->status >= 500 ? absl::UnavailableError(why) : absl::UnauthenticatedError(why);
  }
  OidcTokens tokens;
  tokens.id_token = answer.is_object() ? StringMember(answer, "id_token") : "";
  tokens.refresh_token = answer.is_object() ? StringMember(answer, "refresh_token") : "";
  absl::StatusOr<Jwt> jwt = ParseJwt(tokens.id_token);
  if (!jwt.ok()) return absl::UnauthenticatedError("the identity provider sent no ID token");
  auto exp = jwt->claims.find("exp");
  if (exp == jwt->claims.end() || !exp->is_number()) {
    return absl::UnauthenticatedError("the ID token has no exp");
  }
  tokens.expiry = absl::FromUnixSeconds(exp->get<int64_t>());
  if (!expected_nonce.empty() && StringMember(jwt->claims, "nonce") != expected_nonce) {
    return absl::UnauthenticatedError("the ID token's nonce is not this sign-in's");
  }
  return tokens;
}

absl::StatusOr<OidcTokens> OidcClient::Exchange(std::string_view code,
                                                const AuthorizationRequest& request) const {
  return TokenRequest({{"grant_type", "authorization_code"},
                       {"code", std::string(code)},
                       {"redirect_uri", options_.redirect_url},
                       {"code_verifier", request.code_verifier}},
                      request.nonce);
}

absl::StatusOr<OidcTokens> OidcClient::Refresh(std::string_view refresh_token) const {
  if (refresh_token.empty()) return absl::UnauthenticatedError("no refresh token");
  absl::StatusOr<OidcTokens> tokens = TokenRequest(
      {{"grant_type", "refresh_token"}, {"refresh_token", std::string(refresh_token)}}, "");
  if (tokens.ok() && tokens->refresh_token.empty()) {
    tokens->refresh_token = std::string(refresh_token);  // not rotated: keep using it
  }
  return tokens;
}

}  // namespace latchkey
