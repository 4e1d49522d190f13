#include "console/sso_sessions.h"

#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/key_format.h"

namespace latchkey::console {

namespace {

absl::Status SignInAgain() {
  return absl::UnauthenticatedError("your sign-in has ended; sign in again");
}

// Drops entries older than `ttl` (by `time`) from `map`.
template <typename Map, typename Time>
void Expire(Map& map, absl::Duration ttl, Time time) {
  const absl::Time now = absl::Now();
  absl::erase_if(map, [&](const auto& entry) { return now - time(entry.second) > ttl; });
}

}  // namespace

SsoSessions::SsoSessions(std::unique_ptr<OidcClient> client, SsoLimits limits)
    : client_(std::move(client)), limits_(limits) {}

absl::StatusOr<SsoSessions::Started> SsoSessions::Begin() {
  absl::StatusOr<AuthorizationRequest> request = client_->Begin();
  if (!request.ok()) return request.status();
  MutexLock lock(&mu_);
  Expire(pending_, limits_.sign_in_within, [](const Pending& p) { return p.begun; });
  if (pending_.size() >= limits_.max_pending) {
    return absl::ResourceExhaustedError("too many sign-ins under way; try again in a minute");
  }
  Started started{request->url, request->state};
  pending_[started.state] = Pending{*std::move(request), absl::Now()};
  return started;
}

absl::StatusOr<std::string> SsoSessions::Finish(std::string_view state, std::string_view code) {
  Pending pending;
  {
    MutexLock lock(&mu_);
    auto it = pending_.find(absl::string_view(state.data(), state.size()));
    // Used once: a replayed callback finds nothing.
    if (it == pending_.end()) {
      return absl::UnauthenticatedError("this sign-in is unknown or already used; start again");
    }
    pending = std::move(it->second);
    pending_.erase(it);
  }
  if (absl::Now() - pending.begun > limits_.sign_in_within) {
    return absl::UnauthenticatedError("this sign-in took too long; start again");
  }
  absl::StatusOr<OidcTokens> tokens = client_->Exchange(code, pending.request);
  if (!tokens.ok()) return tokens.status();
  std::string cookie = RandomBase62(43);  // 256 bits
  MutexLock lock(&mu_);
  Expire(sessions_, limits_.session_lifetime, [](const Session& s) { return s.started; });
  if (sessions_.size() >= limits_.max_sessions) {
    return absl::ResourceExhaustedError("too many people signed in to this console");
  }
  sessions_[Sha256Bytes(cookie)] = Session{*std::move(tokens), absl::Now()};
  return cookie;
}

absl::StatusOr<std::string> SsoSessions::IdToken(std::string_view cookie) {
  const std::string id = Sha256Bytes(cookie);
  auto fresh =
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> std::optional<absl::StatusOr<std::string>> {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return SignInAgain();
    if (absl::Now() - it->second.started > limits_.session_lifetime) {
      sessions_.erase(it);
      return SignInAgain();
    }
    if (it->second.tokens.expiry - absl::Now() > limits_.refresh_before) {
      return it->second.tokens.id_token;
    }
    return std::nullopt;  // needs a refresh
  };
  {
    MutexLock lock(&mu_);
    if (auto answer = fresh()) return *answer;
  }
  MutexLock refreshing(&refresh_mu_);
  std::string refresh_token;
  {
    MutexLock lock(&mu_);
    if (auto answer = fresh()) return *answer;  // another call refreshed it
    refresh_token = sessions_[id].tokens.refresh_token;
  }
  absl::StatusOr<OidcTokens> renewed = client_->Refresh(refresh_token);
  MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return SignInAgain();  // signed out meanwhile
  if (!renewed.ok()) {
    // Unreachable provider: the token still works until it expires.
    if (absl::IsUnavailable(renewed.status()) && it->second.tokens.expiry > absl::Now()) {
      return it->second.tokens.id_token;
    }
    sessions_.erase(it);
    return SignInAgain();
  }
  it->second.tokens = *std::move(renewed);
  return it->second.tokens.id_token;
}

void SsoSessions::End(std::string_view cookie) {
  MutexLock lock(&mu_);
  sessions_.erase(Sha256Bytes(cookie));
}

size_t SsoSessions::size() const {
  MutexLock lock(&mu_);
  return sessions_.size();
}

}  // namespace latchkey::console
