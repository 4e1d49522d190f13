#include "sidecar/validator_service.h"

#include "absl/time/clock.h"
#include "common/key_format.h"
#include "common/strings.h"

namespace latchkey {

void ValidatorService::Check(const std::string& key, bool rejecting, absl::Time now,
                             v1::ValidateResponse* out) {
  if (rejecting) {
    // Stale under --stale-policy=reject: say nothing we cannot vouch for,
    // but a malformed key is malformed whatever the authority says.
    out->set_verdict(ParseKey(key) == v1::KEY_KIND_UNSPECIFIED ? v1::MALFORMED : v1::UNKNOWN);
    return;
  }
  const Validation v = keys_->Validate(key, now);
  if (v.verdict == v1::VALID) usage_->Record(v.key_id, now);
  v.ToProto(out);
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
