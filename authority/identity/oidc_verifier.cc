#include "authority/identity/oidc_verifier.h"

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/http.h"
#include "common/oidc_client.h"
#include "common/strings.h"

namespace latchkey {

namespace {

absl::Status Refused(std::string_view why) {
  return absl::UnauthenticatedError(StrCat("ID token refused: ", why));
}

bool HasAudience(const nlohmann::json& aud, const std::string& client_id) {
  if (aud.is_string()) return aud.get<std::string>() == client_id;
  if (!aud.is_array()) return false;
  for (const nlohmann::json& a : aud) {
    if (a.is_string() && a.get<std::string>() == client_id) return true;
  }
  return false;
}

// A NumericDate claim (seconds since the epoch); nullopt when it is not a
// number, or one past any date a token could mean (converting it would be
// undefined behaviour).
std::optional<absl::Time> NumericDate(const nlohmann::json& claims, const char* name) {
  auto it = claims.find(name);
  if (it == claims.end() || !it->is_number()) return std::nullopt;
  const double seconds = it->get<double>();
  if (!(seconds > -1e11 && seconds < 1e11)) return std::nullopt;
  return absl::FromUnixSeconds(static_cast<int64_t>(seconds));
}

}  // namespace

absl::StatusOr<std::unique_ptr<OidcVerifier>> OidcVerifier::Create(OidcVerifierOptions options) {
  absl::StatusOr<HttpUrl> issuer = ProviderUrl(options.issuer_url, "--oidc-issuer-url");
  if (!issuer.ok()) return issuer.status();
  if (options.client_id.empty()) {
    return absl::InvalidArgumentError("--oidc-client-id is needed with --oidc-issuer-url");
  }
  if (options.username_claim.empty()) {
    return absl::InvalidArgumentError("--oidc-username-claim must name a claim");
  }
  return std::unique_ptr<OidcVerifier>(new OidcVerifier(std::move(options)));
}

uint64_t OidcVerifier::key_fetches() const {
  MutexLock lock(&mu_);
  return fetches_;
}

absl::StatusOr<std::string> OidcVerifier::Get(std::string_view url) const {
  return FetchUrl(url, options_.ca_file, options_.fetch_timeout);
}

absl::StatusOr<OidcVerifier::Keys> OidcVerifier::FetchKeys() const {
  std::string issuer = options_.issuer_url;
  while (absl::EndsWith(issuer, "/")) issuer.pop_back();
  absl::StatusOr<std::string> discovery = Get(StrCat(issuer, "/.well-known/openid-configuration"));
  if (!discovery.ok()) return discovery.status();
  const nlohmann::json doc = nlohmann::json::parse(*discovery, nullptr, false);
  if (!doc.is_object() || !doc.contains("issuer") || !doc["issuer"].is_string() ||
      !doc.contains("jwks_uri") || !doc["jwks_uri"].is_string()) {
    return absl::UnavailableError("the issuer's discovery document has no issuer or jwks_uri");
  }
  // The document must be the issuer's own (OpenID Connect Discovery, 4.3).
  if (doc["issuer"].get<std::string>() != options_.issuer_url) {
    return absl::UnavailableError(StrCat("the discovery document names issuer \"",
                                         doc["issuer"].get<std::string>(), "\", not \"",
                                         options_.issuer_url, "\""));
  }
  absl::StatusOr<std::string> jwks = Get(doc["jwks_uri"].get<std::string>());
  if (!jwks.ok()) return jwks.status();
  absl::StatusOr<Keys> keys = ParseJwks(*jwks);
  if (!keys.ok())
    return absl::UnavailableError(StrCat("jwks_uri: ", std::string(keys.status().message())));
  return keys;
}

absl::StatusOr<std::shared_ptr<const PublicKey>> OidcVerifier::KeyFor(
    const std::string& kid) const {
  auto lookup = [&](const Keys& keys) -> std::shared_ptr<const PublicKey> {
    if (kid.empty() && keys.size() == 1) return keys.begin()->second;
    auto it = keys.find(kid);
    return it == keys.end() ? nullptr : it->second;
  };
  {
    MutexLock lock(&mu_);
    if (auto key = lookup(keys_)) return key;
    // Nobody waits on a fetch: while one is under way, or within
    // min_refetch of the last one's start, a kid not known is refused at
    // once. So tokens with made-up kids, which anyone can send, cost the
    // provider at most one fetch per min_refetch and hold no thread.
    if (fetching_ || absl::Now() - fetched_ < options_.min_refetch) {
      return Refused("signed by a key the issuer does not list");
    }
    fetching_ = true;
    fetched_ = absl::Now();
  }
  absl::StatusOr<Keys> fetched = FetchKeys();
  MutexLock lock(&mu_);
  fetching_ = false;
  if (!fetched.ok()) return fetched.status();
  ++fetches_;
  keys_ = *std::move(fetched);
  if (auto key = lookup(keys_)) return key;
  return Refused("signed by a key the issuer does not list");
}

absl::Status OidcVerifier::CheckClaims(const nlohmann::json& claims) const {
  if (!claims.contains("aud") || !HasAudience(claims["aud"], options_.client_id)) {
    return Refused("issued for another audience (client id)");
  }
  if (claims["aud"].is_array() && claims["aud"].size() > 1 &&
      (!claims.contains("azp") || claims["azp"] != options_.client_id)) {
    return Refused("several audiences, and azp is not this client id");
  }
  const absl::Time now = absl::Now();
  std::optional<absl::Time> exp = NumericDate(claims, "exp");
  if (!exp) return Refused("no exp");
  if (now > *exp + options_.clock_skew) return Refused("expired");
  if (claims.contains("nbf")) {
    std::optional<absl::Time> nbf = NumericDate(claims, "nbf");
    if (!nbf) return Refused("nbf is not a number");
    if (now + options_.clock_skew < *nbf) return Refused("not valid yet (nbf)");
  }
  if (!claims.contains("sub") || !claims["sub"].is_string() ||
      claims["sub"].get<std::string>().empty()) {
    return Refused("no sub");
  }
  return absl::OkStatus();
}

absl::StatusOr<OidcIdentity> OidcVerifier::Verify(std::string_view token) const {
  absl::StatusOr<Jwt> jwt = ParseJwt(token);
  if (!jwt.ok()) return Refused("not a well-formed JWT");
  const nlohmann::json& header = jwt->header;
  const nlohmann::json& claims = jwt->claims;
  const std::string alg =
      header.contains("alg") && header["alg"].is_string() ? header["alg"].get<std::string>() : "";
  if (alg != "RS256" && alg != "ES256") {
    return Refused(StrCat("alg \"", alg.substr(0, 16), "\"; only RS256 and ES256 are accepted"));
  }
  // The issuer first: a token of another issuer must not make us fetch keys.
  if (!claims.contains("iss") || claims["iss"] != options_.issuer_url) {
    return Refused("issued by another issuer");
  }
  const std::string kid =
      header.contains("kid") && header["kid"].is_string() ? header["kid"].get<std::string>() : "";
  absl::StatusOr<std::shared_ptr<const PublicKey>> key = KeyFor(kid);
  if (!key.ok()) return key.status();
  if ((*key)->algorithm() != alg) return Refused("alg does not match the signing key's type");
  if (!(*key)->Verifies(jwt->signing_input, jwt->signature)) return Refused("bad signature");
  if (absl::Status s = CheckClaims(claims); !s.ok()) return s;

  OidcIdentity identity;
  identity.issuer = options_.issuer_url;
  identity.subject = claims["sub"].get<std::string>();
  auto username = claims.find(options_.username_claim);
  if (username == claims.end() || !username->is_string() || username->get<std::string>().empty()) {
    return Refused(StrCat("no ", options_.username_claim, " claim (--oidc-username-claim)"));
  }
  // As Kubernetes does: an email address the provider has not verified is
  // not an identity.
  if (options_.username_claim == "email" && claims.contains("email_verified") &&
      claims["email_verified"] != true) {
    return Refused("email_verified is not true");
  }
  identity.username = username->get<std::string>();
  auto groups = claims.find(options_.groups_claim);
  if (groups != claims.end() && groups->is_string()) {
    identity.groups.push_back(groups->get<std::string>());
  } else if (groups != claims.end() && groups->is_array()) {
    for (const nlohmann::json& g : *groups) {
      if (g.is_string()) identity.groups.push_back(g.get<std::string>());
    }
  }
  return identity;
}

}  // namespace latchkey
