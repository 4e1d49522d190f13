// "Sign in with SSO" for the console (docs/console.md, "Signing in, and who decides"): the
// authorization code flow with PKCE against the organization's identity
// provider, and the sessions it opens. A session lives in this process only,
// named by an opaque cookie value of 256 random bits; it holds the person's ID
// token and refresh token, which never reach the browser. The console sends
// the ID token to the authority as the bearer of the person's calls, and
// refreshes it before it expires; when it cannot, the session ends and the
// page asks the person to sign in again.
//
// SsoSessions is safe for concurrent use.
#ifndef LATCHKEY_CONSOLE_SSO_SESSIONS_H_
#define LATCHKEY_CONSOLE_SSO_SESSIONS_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/mutex.h"
#include "common/oidc_client.h"

namespace latchkey::console {

struct SsoLimits {
  absl::Duration refresh_before = absl::Seconds(60);  // refresh an ID token this close to exp
  absl::Duration sign_in_within = absl::Minutes(10);  // from the login redirect to the callback
  absl::Duration session_lifetime = absl::Hours(12);  // then sign in again, refresh or not
  size_t max_sessions = 10000;
  size_t max_pending = 1000;  // sign-ins begun, not finished
};

class SsoSessions {
 public:
  SsoSessions(std::unique_ptr<OidcClient> client, SsoLimits limits = {});

  // Starts a sign-in: the provider URL to redirect the browser to, and the
  // sign-in's state, which the browser must bring back beside the provider's
  // (in a cookie): a callback link someone else started opens nothing.
  struct Started {
    std::string url;
    std::string state;
  };
  absl::StatusOr<Started> Begin();
  // Finishes the sign-in `state` names with the provider's `code`: the new
  // session's cookie value. UNAUTHENTICATED for an unknown, used or stale
  // state, or a code the provider refuses.
  absl::StatusOr<std::string> Finish(std::string_view state, std::string_view code);
  // The ID token to call the authority with for session `cookie`, refreshed
  // first when it is about to expire. UNAUTHENTICATED when there is no such
  // session any more (signed out, too old, or the refresh was refused).
  absl::StatusOr<std::string> IdToken(std::string_view cookie);
  // Signs out: forgets the session.
  void End(std::string_view cookie);

  size_t size() const;

 private:
  struct Session {
    OidcTokens tokens;
    absl::Time started;
  };
  struct Pending {
    AuthorizationRequest request;
    absl::Time begun;
  };

  const std::unique_ptr<OidcClient> client_;
  const SsoLimits limits_;
  Mutex refresh_mu_;  // one refresh at a time, so a rotated refresh token is used once
  mutable Mutex mu_;  // after refresh_mu_
  // By the SHA-256 of the cookie value: a memory dump does not hold cookies.
  absl::flat_hash_map<std::string, Session> sessions_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Pending> pending_ ABSL_GUARDED_BY(mu_);  // by state
};

}  // namespace latchkey::console

#endif  // LATCHKEY_CONSOLE_SSO_SESSIONS_H_
