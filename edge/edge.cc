#include "latchkey/edge.h"

#include <cstring>
#include <thread>

#include "absl/time/clock.h"
#include "common/key_format.h"
#include "sidecar/follower.h"

namespace latchkey::edge {
namespace {

Verdict FromProto(v1::Verdict v) {
  switch (v) {
    case v1::VALID:
      return Verdict::kValid;
    case v1::REVOKED:
      return Verdict::kRevoked;
    case v1::EXPIRED:
      return Verdict::kExpired;
    case v1::PROJECT_DISABLED:
      return Verdict::kProjectDisabled;
    case v1::MALFORMED:
      return Verdict::kMalformed;
    default:
      return Verdict::kUnknown;
  }
}

}  // namespace

Validator::Validator(std::unique_ptr<Follower> follower) : follower_(std::move(follower)) {}

Validator::~Validator() = default;  // Follower's destructor stops it

absl::StatusOr<std::unique_ptr<Validator>> Validator::Start(Options options) {
  FollowerOptions follow;
  follow.authority = std::move(options.authority);
  follow.authority_tls = {.ca = std::move(options.tls_ca_file),
                          .cert = std::move(options.tls_cert_file),
                          .key = std::move(options.tls_key_file)};
  follow.token = std::move(options.token);
  follow.sidecar_id = std::move(options.client_id);
  follow.max_staleness = options.max_staleness;
  follow.stale_policy = options.reject_when_stale ? StalePolicy::kReject : StalePolicy::kServe;
  follow.usage_interval = options.usage_interval;
  follow.state_file = std::move(options.state_file);
  absl::StatusOr<std::unique_ptr<Follower>> follower = Follower::Start(std::move(follow));
  if (!follower.ok()) return follower.status();
  return std::unique_ptr<Validator>(new Validator(*std::move(follower)));
}

Result Validator::Validate(std::string_view key) const {
  const Validation v = follower_->Validate(key);
  Result r;
  r.verdict = FromProto(v.verdict);
  r.secret_key = v.kind == v1::SECRET_KEY;
  if (v.has_ids()) {
    r.has_ids_ = true;
    r.key_id_ = v.key_id_chars();
    std::memcpy(r.project_id_.data(), kProjectIdPrefix.data(), kProjectIdPrefix.size());
    std::memcpy(r.project_id_.data() + kProjectIdPrefix.size(), v.packed_project_id.data(),
                v.packed_project_id.size());
  }
  return r;
}

bool Validator::fresh() const { return follower_->fresh(); }

bool Validator::WaitUntilFresh(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (!fresh()) {
    if (absl::Now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

uint64_t Validator::applied_revision() const { return follower_->sync_state().applied; }

}  // namespace latchkey::edge
