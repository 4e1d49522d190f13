#include "authority/identity/oidc_verifier.h"

#include <catch2/catch.hpp>

#include "tests/testing/test_issuer.h"

namespace latchkey {
namespace {

using testing::TestIssuer;

constexpr char kClient[] = "latchkey-console";

std::unique_ptr<OidcVerifier> VerifierFor(const TestIssuer& issuer,
                                          absl::Duration min_refetch = absl::ZeroDuration()) {
  OidcVerifierOptions options;
  options.issuer_url = issuer.url();
  options.client_id = kClient;
  options.min_refetch = min_refetch;
  absl::StatusOr<std::unique_ptr<OidcVerifier>> verifier = OidcVerifier::Create(options);
  REQUIRE(verifier.ok());
  return *std::move(verifier);
}

// The refusal of `token`, checked to be UNAUTHENTICATED and to hold no part
// of the token.
std::string Refusal(const OidcVerifier& verifier, const std::string& token) {
  absl::StatusOr<OidcIdentity> identity = verifier.Verify(token);
  REQUIRE_FALSE(identity.ok());
  CHECK(identity.status().code() == absl::StatusCode::kUnauthenticated);
  const std::string message(identity.status().message());
  const std::string payload = token.substr(token.find('.') + 1, 16);
  CHECK((payload.empty() || message.find(payload) == std::string::npos));
  return message;
}

TEST_CASE("an ID token signed with RS256 or ES256 by the issuer names the person and groups",
          "[oidc]") {
  TestIssuer issuer;
  const std::string rsa = issuer.AddKey("RS256");
  const std::string ec = issuer.AddKey("ES256");
  auto verifier = VerifierFor(issuer);
  for (const std::string& kid : {rsa, ec}) {
    absl::StatusOr<OidcIdentity> alice = verifier->Verify(
        issuer.Sign(issuer.Claims(kClient, "alice@example.com", {"platform"}), kid));
    REQUIRE(alice.ok());
    CHECK(alice->issuer == issuer.url());
    CHECK(alice->subject == "sub-alice@example.com");
    CHECK(alice->username == "alice@example.com");
    CHECK(alice->groups == std::vector<std::string>{"platform"});
  }
  // Both keys came in one fetch: a known key is never fetched again.
  CHECK(verifier->key_fetches() == 1);
  CHECK(issuer.jwks_requests() == 1);
}

TEST_CASE(
    "ID tokens from another issuer, for another audience, expired or not yet valid are "
    "refused",
    "[oidc]") {
  TestIssuer issuer;
  const std::string kid = issuer.AddKey("RS256");
  auto verifier = VerifierFor(issuer);

  nlohmann::json other_issuer = issuer.Claims(kClient, "alice@example.com");
  other_issuer["iss"] = "https://login.example.net";
  CHECK_THAT(Refusal(*verifier, issuer.Sign(other_issuer, kid)), Catch::Contains("another issuer"));
  // Refused before any key was fetched for it.
  CHECK(issuer.jwks_requests() == 0);

  CHECK_THAT(Refusal(*verifier, issuer.Sign(issuer.Claims("grafana", "alice@example.com"), kid)),
             Catch::Contains("another audience"));
  CHECK_THAT(
      Refusal(*verifier,
              issuer.Sign(issuer.Claims(kClient, "alice@example.com", {}, -absl::Minutes(5)), kid)),
      Catch::Contains("expired"));
  // Within the clock skew (60 s) an expiry is forgiven.
  CHECK(verifier
            ->Verify(issuer.Sign(
                issuer.Claims(kClient, "alice@example.com", {}, -absl::Seconds(20)), kid))
            .ok());
  nlohmann::json later = issuer.Claims(kClient, "alice@example.com");
  later["nbf"] = absl::ToUnixSeconds(absl::Now() + absl::Minutes(10));
  CHECK_THAT(Refusal(*verifier, issuer.Sign(later, kid)), Catch::Contains("not valid yet"));
  nlohmann::json several = issuer.Claims(kClient, "alice@example.com");
  several["aud"] = {kClient, "grafana"};
  CHECK_THAT(Refusal(*verifier, issuer.Sign(several, kid)), Catch::Contains("azp"));
  several["azp"] = kClient;
  CHECK(verifier->Verify(issuer.Sign(several, kid)).ok());
}

TEST_CASE("ID tokens with a bad signature, alg none, HMAC or a mismatched alg are refused",
          "[oidc]") {
  TestIssuer issuer;
  const std::string rsa = issuer.AddKey("RS256");
  const std::string ec = issuer.AddKey("ES256");
  auto verifier = VerifierFor(issuer);
  const nlohmann::json claims = issuer.Claims(kClient, "alice@example.com");

  // A payload changed after signing: the signature no longer covers it.
  const std::string good = issuer.Sign(claims, rsa);
  nlohmann::json raised = claims;
  raised["groups"] = {"platform"};
  const size_t dot = good.find('.');
  const std::string tampered =
      good.substr(0, dot + 1) + Base64UrlEncode(raised.dump()) + good.substr(good.rfind('.'));
  CHECK_THAT(Refusal(*verifier, tampered), Catch::Contains("bad signature"));
  CHECK_THAT(Refusal(*verifier, TestIssuer::Unsigned(claims)), Catch::Contains("\"none\""));
  CHECK_THAT(Refusal(*verifier, issuer.Sign(claims, rsa, "HS256")), Catch::Contains("HS256"));
  // An EC key's signature presented as RS256.
  CHECK_THAT(Refusal(*verifier, issuer.Sign(claims, ec, "RS256")),
             Catch::Contains("does not match"));
  CHECK_THAT(Refusal(*verifier, "not.a.jwt"), Catch::Contains("well-formed"));
}

TEST_CASE(
    "a token without the username claim, with an unverified email or an impossible exp, "
    "is refused",
    "[oidc]") {
  TestIssuer issuer;
  const std::string kid = issuer.AddKey("ES256");
  auto verifier = VerifierFor(issuer);
  nlohmann::json claims = issuer.Claims(kClient, "alice@example.com");
  claims.erase("email");
  CHECK_THAT(Refusal(*verifier, issuer.Sign(claims, kid)), Catch::Contains("no email claim"));
  claims["email"] = "alice@example.com";
  claims["email_verified"] = false;
  CHECK_THAT(Refusal(*verifier, issuer.Sign(claims, kid)), Catch::Contains("email_verified"));
  claims["email_verified"] = "true";  // a string is not the boolean
  CHECK_THAT(Refusal(*verifier, issuer.Sign(claims, kid)), Catch::Contains("email_verified"));
  claims["email_verified"] = true;
  CHECK(verifier->Verify(issuer.Sign(claims, kid)).ok());
  // An exp no date could be (converting it would overflow) is no exp.
  claims["exp"] = 1e300;
  CHECK_THAT(Refusal(*verifier, issuer.Sign(claims, kid)), Catch::Contains("no exp"));
}

TEST_CASE("after the provider rotates its keys, a token with the new kid fetches them again",
          "[oidc]") {
  TestIssuer issuer;
  const std::string old_kid = issuer.AddKey("RS256");
  auto eager = VerifierFor(issuer, absl::ZeroDuration());
  auto patient = VerifierFor(issuer, absl::Hours(1));
  const nlohmann::json claims = issuer.Claims(kClient, "alice@example.com");
  REQUIRE(eager->Verify(issuer.Sign(claims, old_kid)).ok());
  REQUIRE(patient->Verify(issuer.Sign(claims, old_kid)).ok());
  REQUIRE(issuer.jwks_requests() == 2);

  const std::string new_kid = issuer.AddKey("ES256");
  issuer.DropKey(old_kid);
  // An unknown kid fetches the keys again, and the new one verifies.
  REQUIRE(eager->Verify(issuer.Sign(claims, new_kid)).ok());
  CHECK(eager->key_fetches() == 2);
  // The dropped key no longer verifies anything.
  CHECK_THAT(Refusal(*eager, issuer.Sign(claims, old_kid)), Catch::Contains("does not list"));
  // Within min_refetch of the last fetch an unknown kid fetches nothing, so
  // tokens naming made-up kids cannot make the authority hammer the provider.
  CHECK_THAT(Refusal(*patient, issuer.Sign(claims, new_kid)), Catch::Contains("does not list"));
  CHECK(patient->key_fetches() == 1);
}

TEST_CASE(
    "an issuer that cannot be reached is UNAVAILABLE, and an http issuer beyond loopback "
    "is refused at start",
    "[oidc]") {
  std::string url;
  {
    TestIssuer gone;
    url = gone.url();
  }
  OidcVerifierOptions options;
  options.issuer_url = url;
  options.client_id = kClient;
  absl::StatusOr<std::unique_ptr<OidcVerifier>> verifier = OidcVerifier::Create(options);
  REQUIRE(verifier.ok());
  TestIssuer elsewhere;
  const std::string kid = elsewhere.AddKey("RS256");
  nlohmann::json claims = elsewhere.Claims(kClient, "alice@example.com");
  claims["iss"] = url;
  CHECK((*verifier)->Verify(elsewhere.Sign(claims, kid)).status().code() ==
        absl::StatusCode::kUnavailable);

  options.issuer_url = "http://login.example.com";
  CHECK(OidcVerifier::Create(options).status().code() == absl::StatusCode::kInvalidArgument);
  options.issuer_url = "https://login.example.com";
  options.client_id = "";
  CHECK(OidcVerifier::Create(options).status().code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace latchkey
