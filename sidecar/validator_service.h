// Validator over gRPC: answers from the KeySet in memory, never from the
// authority.
#ifndef LATCHKEY_SIDECAR_VALIDATOR_SERVICE_H_
#define LATCHKEY_SIDECAR_VALIDATOR_SERVICE_H_

#include <array>
#include <functional>

#include "common/metrics.h"
#include "latchkey/v1/validator.grpc.pb.h"
#include "sidecar/key_set.h"
#include "sidecar/usage.h"

namespace latchkey {

// Counters per verdict and the check's latency, resolved once.
struct ValidationMetrics {
  // Verdicts counted by one thread, added at once.
  struct Tally {
    std::array<uint64_t, v1::Verdict_ARRAYSIZE> by_verdict{};
    void Count(v1::Verdict verdict);
  };

  explicit ValidationMetrics(Registry& registry);
  // The verdicts of `keys` keys checked in `took`: a batch observes its mean
  // time per key once per key.
  void Add(const Tally& tally, size_t keys, absl::Duration took);

  std::array<Counter*, v1::Verdict_ARRAYSIZE> by_verdict;
  Histogram* check_seconds;
};

struct ValidatorOptions {
  size_t max_batch = 10000;
  // True while validation must answer UNKNOWN (past --max-staleness under
  // --stale-policy=reject, or before the first sync).
  std::function<bool()> rejecting = [] { return false; };
};

// Thread-safe; `keys` and `usage` must outlive the service.
// ValidateBatch is served from the raw bytes (sidecar/batch_codec.h): no
// message, and no allocation, per key.
using ValidatorBase = v1::Validator::WithCallbackMethod_Validate<
    v1::Validator::WithRawCallbackMethod_ValidateBatch<v1::Validator::Service>>;

class ValidatorService final : public ValidatorBase {
 public:
  // `metrics` may be null.
  ValidatorService(const KeySet* keys, UsageCounter* usage, ValidationMetrics* metrics,
                   ValidatorOptions options)
      : keys_(keys), usage_(usage), metrics_(metrics), options_(std::move(options)) {}

  grpc::ServerUnaryReactor* Validate(grpc::CallbackServerContext* ctx,
                                     const v1::ValidateRequest* req,
                                     v1::ValidateResponse* resp) override;
  grpc::ServerUnaryReactor* ValidateBatch(grpc::CallbackServerContext* ctx,
                                          const grpc::ByteBuffer* req,
                                          grpc::ByteBuffer* resp) override;

 private:
  const KeySet* const keys_;
  UsageCounter* const usage_;
  ValidationMetrics* const metrics_;
  const ValidatorOptions options_;
};

}  // namespace latchkey

#endif  // LATCHKEY_SIDECAR_VALIDATOR_SERVICE_H_
