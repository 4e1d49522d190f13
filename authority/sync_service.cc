#include "authority/sync_service.h"

#include "absl/time/clock.h"
#include "authority/admin_service.h"
#include "authority/watch_stream.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace latchkey {
namespace {

constexpr size_t kMaxSidecarIdChars = 128;

// The gRPC face of one Watch call: a write reactor that is the stream's sink.
// It holds a session in receipts from construction to OnDone. Deletes itself
// in OnDone, when gRPC has finished with it.
class WatchReactor final : public grpc::ServerWriteReactor<v1::WatchResponse>, public WatchSink {
 public:
  WatchReactor(KeyStore* store, EventHub* hub, PropagationTracker* propagation,
               WorkQueue* store_work, const std::string& principal_id,
               const std::string& sidecar_id, const std::string& resume_session, size_t queue_limit)
      : propagation_(propagation),
        receipts_(propagation->Opened(principal_id, sidecar_id, resume_session, absl::Now())),
        stream_(store, hub, store_work, this, principal_id, sidecar_id, queue_limit,
                receipts_.session) {}

  void Start(const v1::WatchRequest& req, WatchStream::Admit admit) {
    stream_.Start(req, std::move(admit));
  }

  // WatchSink.
  void Write(const v1::WatchResponse* message) override { StartWrite(message); }
  void End(absl::Status status) override { Finish(ToGrpcStatus(status)); }

  // grpc::ServerWriteReactor.
  void OnWriteDone(bool ok) override { stream_.OnWriteDone(ok); }
  void OnCancel() override { stream_.Cancel(); }
  void OnDone() override {
    propagation_->Closed(receipts_, absl::Now());
    delete this;  // the stream leaves the hub
  }

 private:
  PropagationTracker* const propagation_;
  const PropagationTracker::Stream receipts_;
  WatchStream stream_;
};

std::string SidecarId(const grpc::CallbackServerContext& ctx, const v1::WatchRequest& req) {
  if (!req.sidecar_id().empty()) return req.sidecar_id();
  return ctx.peer();
}

}  // namespace

SyncService::SyncService(KeyAuthority* authority, EventHub* hub, PropagationTracker* propagation,
                         WorkQueue* store_work, SyncServiceOptions options)
    : authority_(authority),
      hub_(hub),
      propagation_(propagation),
      store_work_(store_work),
      options_(options) {
  authority_->SetPrincipalDeletedListener([hub](const std::string& principal_id) {
    hub->ClosePrincipal(principal_id, absl::UnauthenticatedError("principal deleted"));
  });
}

SyncService::~SyncService() { authority_->SetPrincipalDeletedListener(nullptr); }

grpc::ServerWriteReactor<v1::WatchResponse>* SyncService::Watch(grpc::CallbackServerContext* ctx,
                                                                const v1::WatchRequest* req) {
  absl::StatusOr<Caller> caller = AuthenticateCall(*authority_, *ctx);
  absl::Status status = caller.status();
  if (status.ok()) status = Authorize(*caller, Permission::kSync);
  if (status.ok() && req->sidecar_id().size() > kMaxSidecarIdChars) {
    status = absl::InvalidArgumentError("sidecar_id is longer than 128 characters");
  }
  if (status.ok() && hub_->size() >= options_.max_watchers) {
    status = absl::ResourceExhaustedError("too many watch streams; retry later");
  }
  if (!status.ok()) {
    // A reactor that finishes at once, for refused calls.
    class Refused : public grpc::ServerWriteReactor<v1::WatchResponse> {
     public:
      explicit Refused(grpc::Status s) { Finish(std::move(s)); }
      void OnDone() override { delete this; }
    };
    return new Refused(ToGrpcStatus(status));
  }
  auto* stream =
      new WatchReactor(&authority_->store(), hub_, propagation_, store_work_, caller->principal_id,
                       SidecarId(*ctx, *req), req->session(), options_.queue_limit);
  // Authenticated again once the stream is in the hub: a deletion of the
  // caller's principal either closes it there or is seen here.
  stream->Start(*req, [authority = authority_, token = BearerToken(*ctx)] {
    return authority->Authenticate(token).status();
  });
  return stream;
}

grpc::ServerUnaryReactor* SyncService::Acknowledge(grpc::CallbackServerContext* ctx,
                                                   const v1::AcknowledgeRequest* req,
                                                   v1::AcknowledgeResponse*) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::StatusOr<Caller> caller = AuthenticateCall(*authority_, *ctx);
  absl::Status status = caller.status();
  if (status.ok()) status = Authorize(*caller, Permission::kSync);
  if (status.ok()) status = CountAcknowledgement(*caller, *req);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

absl::Status SyncService::CountAcknowledgement(const Caller& caller,
                                               const v1::AcknowledgeRequest& req) {
  if (req.session().empty()) {
    return absl::InvalidArgumentError(
        "session is required: the one the Watch stream's first message carried");
  }
  if (req.leaving()) return propagation_->Left(caller.principal_id, req.session());
  // An acknowledgement for another store (the sidecar has not caught up with
  // a restore yet) says nothing about this one.
  if (req.store_id() != authority_->store().store_id()) return absl::OkStatus();
  const uint64_t head = authority_->store().head_revision();
  if (req.applied_revision() > head) {
    return absl::InvalidArgumentError(
        StrCat("applied_revision ", req.applied_revision(), " is after the head revision ", head));
  }
  return propagation_->Acknowledged(caller.principal_id, req.session(), req.applied_revision(),
                                    absl::Now());
}

grpc::ServerUnaryReactor* SyncService::ReportUsage(grpc::CallbackServerContext* ctx,
                                                   const v1::ReportUsageRequest* req,
                                                   v1::ReportUsageResponse*) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::StatusOr<Caller> caller = AuthenticateCall(*authority_, *ctx);
  absl::Status status = caller.status();
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  // Summed in memory (authority/usage_ledger.h), with no store call: it is
  // answered here, not on the store's threads.
  reactor->Finish(ToGrpcStatus(authority_->RecordUsage(*caller, *req)));
  return reactor;
}

}  // namespace latchkey
