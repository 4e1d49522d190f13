#include "authority/sync_service.h"

#include "absl/time/clock.h"
#include "authority/admin_service.h"
#include "authority/watch_stream.h"
#include "common/log.h"
#include "common/status.h"

namespace latchkey {
namespace {

constexpr size_t kMaxSidecarIdChars = 128;

// The gRPC face of one Watch call: a write reactor that is the stream's sink.
// Deletes itself in OnDone, when gRPC has finished with it.
class WatchReactor final : public grpc::ServerWriteReactor<v1::WatchResponse>, public WatchSink {
 public:
  WatchReactor(KeyStore* store, EventHub* hub, PropagationTracker* propagation,
               WorkQueue* store_work, std::string principal_id, std::string sidecar_id,
               size_t queue_limit)
      : propagation_(propagation),
        sidecar_id_(sidecar_id),
        stream_(store, hub, store_work, this, std::move(principal_id), std::move(sidecar_id),
                queue_limit) {}

  void Start(const v1::WatchRequest& req, WatchStream::Admit admit) {
    propagation_->Connected(sidecar_id_);
    stream_.Start(req, std::move(admit));
  }

  // WatchSink.
  void Write(const v1::WatchResponse* message) override { StartWrite(message); }
  void End(const absl::Status& status) override { Finish(ToGrpcStatus(status)); }

  // grpc::ServerWriteReactor.
  void OnWriteDone(bool ok) override { stream_.OnWriteDone(ok); }
  void OnCancel() override { stream_.Cancel(); }
  void OnDone() override {
    propagation_->Disconnected(sidecar_id_);
    delete this;  // the stream leaves the hub
  }

 private:
  PropagationTracker* const propagation_;
  const std::string sidecar_id_;
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
                       SidecarId(*ctx, *req), options_.queue_limit);
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
  if (status.ok() && req->store_id() == authority_->store().store_id()) {
    propagation_->Acknowledged(req->sidecar_id(), req->applied_revision(), absl::Now());
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
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
  store_work_->Post([this, reactor, caller = *std::move(caller), req] {
    reactor->Finish(ToGrpcStatus(authority_->RecordUsage(caller, *req)));
  });
  return reactor;
}

}  // namespace latchkey
