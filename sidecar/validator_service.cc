#include "sidecar/validator_service.h"

#include <chrono>

#include "absl/time/clock.h"
#include "common/key_format.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time_util.h"
#include "sidecar/batch_codec.h"
#include "sidecar/follower.h"

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

void ValidationMetrics::Tally::Count(v1::Verdict verdict) { ++by_verdict[verdict]; }

void ValidationMetrics::Add(const Tally& tally, size_t keys, absl::Duration took) {
  for (int v = 0; v < v1::Verdict_ARRAYSIZE; ++v) {
    if (tally.by_verdict[v] > 0) by_verdict[v]->Inc(tally.by_verdict[v]);
  }
  if (keys > 0) check_seconds->Observe(absl::ToDoubleSeconds(took) / keys, keys);
}

grpc::ServerUnaryReactor* ValidatorService::Validate(grpc::CallbackServerContext* ctx,
                                                     const v1::ValidateRequest* req,
                                                     v1::ValidateResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  const Validation v = CheckAndCount(*keys_, *usage_, req->key(), options_.rejecting());
  if (metrics_ != nullptr) {
    ValidationMetrics::Tally verdicts;
    verdicts.Count(v.verdict);
    metrics_->Add(verdicts, 1, absl::FromChrono(std::chrono::steady_clock::now() - start));
  }
  v.ToProto(resp);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ValidatorService::ValidateBatch(grpc::CallbackServerContext* ctx,
                                                          const grpc::ByteBuffer* req,
                                                          grpc::ByteBuffer* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  // The request's bytes in one piece: a view of its only slice, or a copy
  // when gRPC received it in several.
  std::vector<grpc::Slice> slices;
  std::string joined;
  std::string_view wire;
  if (grpc::Status dumped = req->Dump(&slices); !dumped.ok()) {
    reactor->Finish(dumped);
    return reactor;
  }
  if (slices.size() == 1) {
    wire = std::string_view(reinterpret_cast<const char*>(slices[0].begin()), slices[0].size());
  } else {
    for (const grpc::Slice& slice : slices) {
      joined.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
    wire = joined;
  }
  std::vector<std::string_view> keys;
  if (absl::Status parsed = ParseBatchRequest(wire, options_.max_batch, &keys); !parsed.ok()) {
    reactor->Finish(ToGrpcStatus(parsed));
    return reactor;
  }
  // Counted here and added once for the whole batch: no shared lock or
  // counter touched per key.
  const bool rejecting = options_.rejecting();
  const absl::Time used = CoarseNow();
  const auto start = std::chrono::steady_clock::now();
  UsageCounter::Tally usage;
  ValidationMetrics::Tally verdicts;
  std::string out;
  out.reserve(keys.size() * kMaxBatchResultBytes);
  for (std::string_view key : keys) {
    const Validation v = Check(*keys_, key, rejecting);
    usage.Count(v, used);
    verdicts.Count(v.verdict);
    AppendBatchResult(v, &out);
  }
  usage_->Add(usage);
  if (metrics_ != nullptr) {
    metrics_->Add(verdicts, keys.size(),
                  absl::FromChrono(std::chrono::steady_clock::now() - start));
  }
  grpc::Slice slice(out);
  *resp = grpc::ByteBuffer(&slice, 1);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace latchkey
