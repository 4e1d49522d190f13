// The client side of OpenID Connect's authorization code flow with PKCE
// (RFC 7636, S256), `state` and `nonce`, as the console's "Sign in with SSO"
// and `latchkeyctl login` run it: the URL to send a person to, the exchange
// of the code the provider sends back for tokens, and refreshing them.
//
// The ID token comes straight from the provider's token endpoint; the client
// checks its nonce and reads its expiry, and leaves verifying its signature
// to whoever accepts it as a credential (the authority does, on every call).
//
// An OidcClient is safe for concurrent use.
#ifndef LATCHKEY_COMMON_OIDC_CLIENT_H_
#define LATCHKEY_COMMON_OIDC_CLIENT_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/http.h"
#include "common/mutex.h"

namespace latchkey {

struct OidcClientOptions {
  std::string issuer_url;  // https://, or http:// on loopback
  std::string client_id;
  std::string client_secret;  // empty: a public client (the CLI), PKCE alone
  std::string redirect_url;   // where the provider sends the person back
  std::string scopes = "openid email profile offline_access";
  std::string ca_file;  // PEM CAs for the provider; empty: the system's
  absl::Duration timeout = absl::Seconds(10);
};

// One sign-in under way: send the person to `url`; keep the rest to finish.
struct AuthorizationRequest {
  std::string url;
  std::string state;
  std::string nonce;
  std::string code_verifier;
};

struct OidcTokens {
  std::string id_token;
  std::string refresh_token;  // empty when the provider gave none
  absl::Time expiry;          // the ID token's exp
};

class OidcClient {
 public:
  // INVALID_ARGUMENT for an issuer or redirect URL that is not https:// (or
  // http:// on loopback), or an empty client id. Fetches nothing yet.
  static absl::StatusOr<std::unique_ptr<OidcClient>> Create(OidcClientOptions options);

  // A new sign-in; fetches the discovery document the first time.
  absl::StatusOr<AuthorizationRequest> Begin() const;
  // The tokens for `code`, redeemed with the request's verifier; their ID
  // token must carry the request's nonce. UNAUTHENTICATED when the provider
  // refuses the code, or the nonce differs.
  absl::StatusOr<OidcTokens> Exchange(std::string_view code,
                                      const AuthorizationRequest& request) const;
  // New tokens for a refresh token (a provider may rotate it: use the one
  // returned). UNAUTHENTICATED when the provider refuses it or returns no ID
  // token: the person must sign in again.
  absl::StatusOr<OidcTokens> Refresh(std::string_view refresh_token) const;

  const OidcClientOptions& options() const { return options_; }

 private:
  struct Endpoints {
    std::string authorization;
    std::string token;
  };
  explicit OidcClient(OidcClientOptions options) : options_(std::move(options)) {}
  absl::StatusOr<Endpoints> Discover() const;
  // POST of a form to the token endpoint; the tokens it answers.
  absl::StatusOr<OidcTokens> TokenRequest(
      const std::vector<std::pair<std::string, std::string>>& form,
      std::string_view expected_nonce) const;

  const OidcClientOptions options_;
  mutable Mutex mu_;
  mutable std::optional<Endpoints> endpoints_ ABSL_GUARDED_BY(mu_);
};

// `url` parsed, when an identity provider may be reached there: https://,
// or http:// on a loopback address; else INVALID_ARGUMENT naming `what`.
absl::StatusOr<HttpUrl> ProviderUrl(std::string_view url, std::string_view what);

// `text` with every byte but RFC 3986's unreserved ones percent-encoded.
std::string UrlEncode(std::string_view text);

// GET of `url` (https://, or http:// on loopback), trusting `ca_file` when
// given: the body, or UNAVAILABLE naming the host and what went wrong.
absl::StatusOr<std::string> FetchUrl(std::string_view url, const std::string& ca_file,
                                     absl::Duration timeout);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_OIDC_CLIENT_H_
