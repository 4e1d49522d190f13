#include "sidecar/validator_service.h"

#include <chrono>

#include "absl/time/clock.h"
#include "common/key_format.h"
#include "common/strings.h"

namespace latchkey {

ValidationMetrics::ValidationMetrics(Registry& registry) {
  auto& verdicts = registry.AddCounterFamily("latchkey_validations_total",
                                             "Keys checked, by verdict.", {"verdict"});
  for (int v = 0; v < v1::Verdict_ARRAYSIZE; ++v) {
    by_verdict[v] = v1::Verdict_IsValid(v)
                        ? &verdicts.With({v1::Verdict_Name(static_cast<v1::Verdict>(v))})
                        : nullptr;
  }
  check_seconds = &registry
                       .AddHistogramFamily("latchkey_validation_check_seconds",
                                           "Time to check one key in memory (format, SHA-256, "
                                           "lookup), without the RPC around it.",
                                           {})
                       .With({});
}

void ValidatorService::Check(const std::string& key, bool rejecting, absl::Time now,
                             v1::ValidateResponse* out) {
  const auto start = std::chrono::steady_clock::now();
  if (rejecting) {
    // Stale under --stale-policy=reject: say nothing we cannot vouch for,
    // but a malformed key is malformed whatever the authority says.
    out->set_verdict(ParseKey(key) == v1::KEY_KIND_UNSPECIFIED ? v1::MALFORMED : v1::UNKNOWN);
  } else {
    const Validation v = keys_->Validate(key, now);
    if (v.verdict == v1::VALID) {
      const std::array<char, 20> id = v.key_id_chars();
      usage_->Record(std::string_view(id.data(), id.size()), now);
    } else if (v.verdict == v1::REVOKED || v.verdict == v1::EXPIRED ||
               v.verdict == v1::PROJECT_DISABLED) {
      const std::array<char, 20> id = v.key_id_chars();
      usage_->RecordRejected(std::string_view(id.data(), id.size()), now);
    }
    v.ToProto(out);
  }
  if (metrics_ != nullptr) {
    metrics_->by_verdict[out->verdict()]->Inc();
    metrics_->check_seconds->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
}

grpc::ServerUnaryReactor* ValidatorService::Validate(grpc::CallbackServerContext* ctx,
                                                     const v1::ValidateRequest* req,
                                                     v1::ValidateResponse* resp) {
  Check(req->key(), options_.rejecting(), absl::Now(), resp);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ValidatorService::ValidateBatch(grpc::CallbackServerContext* ctx,
                                                          const v1::ValidateBatchRequest* req,
                                                          v1::ValidateBatchResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (static_cast<size_t>(req->keys_size()) > options_.max_batch) {
    reactor->Finish(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        StrCat("a batch holds at most ", options_.max_batch, " keys; got ", req->keys_size())));
    return reactor;
  }
  const bool rejecting = options_.rejecting();
  const absl::Time now = absl::Now();
  resp->mutable_results()->Reserve(req->keys_size());
  for (const std::string& key : req->keys()) Check(key, rejecting, now, resp->add_results());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace latchkey
