// latchkeyctl login / logout (docs/security.md, "Signing in with an
// identity provider"): OpenID Connect's authorization code flow with PKCE and
// a loopback redirect, as `gh auth login` and kubelogin run it. The tokens are
// kept 0600 in the user's config directory and refreshed when they near
// their end; every later command then calls the authority as that person.
#ifndef LATCHKEY_CLI_LOGIN_H_
#define LATCHKEY_CLI_LOGIN_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace latchkey::cli {

// A sign-in kept by `latchkeyctl login`.
struct SavedLogin {
  std::string issuer;
  std::string client_id;
  std::string id_token;
  std::string refresh_token;
  absl::Time expiry;
  std::string ca_file;  // --ca-file of the login, for its refreshes
};

// $LATCHKEY_CONFIG_DIR, else $XDG_CONFIG_HOME/latchkey, else
// ~/.config/latchkey; the file is credentials.json in it.
std::string CredentialsPath();

// The saved sign-in; nullopt when there is none.
absl::StatusOr<std::optional<SavedLogin>> LoadLogin(const std::string& path);
// Written 0600 through a temporary file (common/files.h).
absl::Status SaveLogin(const std::string& path, const SavedLogin& login);

// The saved sign-in's ID token, refreshed (and saved again) when it ends
// within a minute. UNAUTHENTICATED, saying to log in again, when it cannot be.
absl::StatusOr<std::string> CurrentIdToken(const std::string& path);

struct LoginOptions {
  std::string issuer;
  std::string client_id;      // the authority's --oidc-client-id: its ID tokens' audience
  std::string client_secret;  // empty: a public client, PKCE alone
  std::string ca_file;
  absl::Duration wait = absl::Minutes(5);  // for the person to finish in the browser
};

// Runs the flow: listens on a free loopback port for the provider's redirect,
// hands `open` the URL the person must visit, and waits for them. The
// tokens, once redeemed.
absl::StatusOr<SavedLogin> Login(const LoginOptions& options,
                                 const std::function<void(const std::string& url)>& open);

}  // namespace latchkey::cli

#endif  // LATCHKEY_CLI_LOGIN_H_
