// Verifies OIDC ID tokens presented as bearer credentials (docs/security.md,
// "Signing in with an identity provider"), as Kubernetes' API server does:
// the issuer's signing keys come from its discovery document's jwks_uri, are
// cached, and are fetched again when a token names a key not yet seen (the
// provider rotated its keys), at most once per min_refetch; no call ever
// waits for another's fetch.
//
// A token is accepted when it is signed with RS256 or ES256 by one of those
// keys, its iss is the issuer, its aud holds the client id, it is within
// exp and nbf (allowing clock_skew), and it carries a subject and the
// username claim. Every refusal is UNAUTHENTICATED with a reason that names
// no token and no secret; an issuer that cannot be reached is UNAVAILABLE.
//
// An OidcVerifier is safe for concurrent use. Verifying with cached keys
// reads no network; a fetch holds no lock.
#ifndef LATCHKEY_AUTHORITY_IDENTITY_OIDC_VERIFIER_H_
#define LATCHKEY_AUTHORITY_IDENTITY_OIDC_VERIFIER_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "authority/core/access.h"
#include "common/jose.h"
#include "common/mutex.h"

namespace latchkey {

struct OidcVerifierOptions {
  std::string issuer_url;                // --oidc-issuer-url: https://, or http:// on loopback
  std::string client_id;                 // --oidc-client-id: the audience ID tokens must name
  std::string username_claim = "email";  // --oidc-username-claim
  std::string groups_claim = "groups";   // --oidc-groups-claim
  std::string ca_file;                   // --oidc-ca-file: PEM; empty: the system's CAs
  absl::Duration clock_skew = absl::Seconds(60);
  absl::Duration min_refetch = absl::Seconds(10);  // between fetches an unknown kid causes
  absl::Duration fetch_timeout = absl::Seconds(5);
};

class OidcVerifier {
 public:
  // INVALID_ARGUMENT for an issuer URL that is not https:// (or http:// on
  // loopback), or an empty client id. Fetches nothing yet: the authority
  // starts while the provider is down, and principal tokens keep working.
  static absl::StatusOr<std::unique_ptr<OidcVerifier>> Create(OidcVerifierOptions options);

  absl::StatusOr<OidcIdentity> Verify(std::string_view token) const;

  // How many times the signing keys were fetched.
  uint64_t key_fetches() const;

 private:
  using Keys = std::map<std::string, std::shared_ptr<const PublicKey>>;
  explicit OidcVerifier(OidcVerifierOptions options) : options_(std::move(options)) {}

  // The key `kid` names ("" when the token names none and the set holds
  // exactly one key), fetching the set when it is not known.
  absl::StatusOr<std::shared_ptr<const PublicKey>> KeyFor(const std::string& kid) const;
  // The discovery document's jwks_uri, then the set it holds.
  absl::StatusOr<Keys> FetchKeys() const;
  // GET of `url`'s body; UNAVAILABLE when there is no 200.
  absl::StatusOr<std::string> Get(std::string_view url) const;
  absl::Status CheckClaims(const nlohmann::json& claims) const;

  const OidcVerifierOptions options_;
  mutable Mutex mu_;
  mutable Keys keys_ ABSL_GUARDED_BY(mu_);
  mutable bool fetching_ ABSL_GUARDED_BY(mu_) = false;                      // one fetch at a time
  mutable absl::Time fetched_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();  // the last's start
  mutable uint64_t fetches_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_IDENTITY_OIDC_VERIFIER_H_
