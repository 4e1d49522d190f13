#include "authority/rpc/sync_service.h"

#include <chrono>
#include <map>
#include <memory>
#include <optional>

#include "absl/time/clock.h"
#include "authority/fanout/watch_stream.h"
#include "authority/fanout/wire_response.h"
#include "authority/rpc/admin_service.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/status.h"
#include "common/strings.h"

namespace latchkey {
namespace {

constexpr size_t kMaxSidecarIdChars = 128;

// Parses a raw request; `what` names the message in the error.
absl::Status ParseRequest(const grpc::ByteBuffer& bytes, std::string_view what,
                          google::protobuf::MessageLite& out) {
  if (!ParseWire(bytes, out)) {
    return absl::InvalidArgumentError(StrCat("the request is not a valid ", what));
  }
  return absl::OkStatus();
}

// One following sidecar, from its watch request until its call is done: its
// place in receipts and the stream of messages it is sent.
class Following {
 public:
  Following(const SyncService::StreamDeps& deps, WatchSink* sink, std::string principal_id,
            const std::string& sidecar_id, const std::string& resume_session)
      : propagation_(deps.propagation),
        receipts_(propagation_->Opened(principal_id, sidecar_id, resume_session, absl::Now())),
        stream_(deps.store, deps.snapshots, deps.hub, deps.store_work, sink,
                std::move(principal_id), sidecar_id, deps.queue_limit, receipts_.session) {}
  // The session's entry stays in receipts, as disconnected, until the
  // sidecar comes back, leaves or is forgotten. Then the stream leaves the
  // hub.
  ~Following() { propagation_->Closed(receipts_, absl::Now()); }

  WatchStream& stream() { return stream_; }
  const std::string& session() const { return receipts_.session; }

 private:
  PropagationTracker* const propagation_;
  const PropagationTracker::Stream receipts_;
  WatchStream stream_;
};

// One Sync or Watch call in latchkey_rpcs_total: these streams are not
// intercepted (RpcMetrics::Interceptor), so their reactors count themselves.
class CallCount {
 public:
  CallCount(const RpcMetrics* metrics, const char* method)
      : metrics_(metrics), method_(method), start_(std::chrono::steady_clock::now()) {}

  // The call's final status, counted; pass it to Finish.
  grpc::Status Finished(const absl::Status& status) const {
    grpc::Status out = ToGrpcStatus(status);
    if (metrics_ != nullptr) {
      metrics_->Count(v1::KeySync::service_full_name(), method_, out.error_code(), start_);
    }
    return out;
  }

 private:
  const RpcMetrics* const metrics_;
  const char* const method_;
  const std::chrono::steady_clock::time_point start_;
};

// A reactor that finishes at once, for refused calls.
template <typename Reactor>
class Refused final : public Reactor {
 public:
  Refused(const CallCount& count, const absl::Status& status) {
    this->Finish(count.Finished(status));
  }
  void OnDone() override { delete this; }
};

// The gRPC face of one Watch call (sidecars of the previous release): a
// write reactor that is the stream's sink. Deletes itself in OnDone, when
// gRPC has finished with it.
class WatchReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer>, public WatchSink {
 public:
  WatchReactor(const SyncService::StreamDeps& deps, CallCount count,
               const std::string& principal_id, const std::string& sidecar_id,
               const std::string& resume_session)
      : count_(count), following_(deps, this, principal_id, sidecar_id, resume_session) {}

  void Start(const v1::WatchRequest& req, WatchStream::Admit admit) {
    following_.stream().Start(req, std::move(admit));
  }

  // WatchSink.
  void Write(const grpc::ByteBuffer* message) override { StartWrite(message); }
  void End(absl::Status status) override { Finish(count_.Finished(status)); }

  // grpc::ServerWriteReactor.
  void OnWriteDone(bool ok) override { following_.stream().OnWriteDone(ok); }
  void OnCancel() override { following_.stream().Cancel(); }
  void OnDone() override { delete this; }

 private:
  const CallCount count_;
  Following following_;
};

// The gRPC face of one Sync call: reads the watch request, starts the stream
// (this reactor is its sink), then counts each acknowledgement the sidecar
// sends under the stream's own session. Deletes itself in OnDone.
//
// gRPC may run OnReadDone, OnWriteDone and OnCancel at once on different
// threads; only OnReadDone touches following_ before the stream starts, and
// OnCancel learns whether it has started under mu_.
class SyncReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                          public WatchSink {
 public:
  SyncReactor(const SyncService* service, const grpc::CallbackServerContext* ctx, CallCount count,
              std::string principal_id, WatchStream::Admit admit)
      : service_(service),
        ctx_(ctx),
        count_(count),
        starting_(new Starting{std::move(principal_id), std::move(admit)}) {
    StartRead(&incoming_);
  }

  // WatchSink.
  void Write(const grpc::ByteBuffer* message) override { StartWrite(message); }
  void End(absl::Status status) override { Finish(count_.Finished(status)); }

  // grpc::ServerBidiReactor.
  void OnReadDone(bool ok) override {
    if (!following_) {
      // Nothing started yet, so this is the only place the call can end.
      if (!ok) {
        End(absl::InvalidArgumentError("a Sync call must send its watch request before closing"));
        return;
      }
      Begin();
      return;
    }
    if (!ok) {
      // The sidecar closed its side (it is leaving) or went away.
      following_->stream().Cancel(absl::OkStatus());
      return;
    }
    v1::SyncRequest request;
    absl::Status counted = TakeRequest(request);
    if (counted.ok()) counted = Acknowledge(request);
    if (!counted.ok()) {
      following_->stream().Cancel(std::move(counted));
      return;
    }
    StartRead(&incoming_);
  }
  void OnWriteDone(bool ok) override { following_->stream().OnWriteDone(ok); }
  void OnCancel() override {
    {
      MutexLock lock(&mu_);
      if (!started_) {
        cancelled_ = true;  // OnReadDone sees it once it has started the stream
        return;
      }
    }
    following_->stream().Cancel();
  }
  void OnDone() override { delete this; }

 private:
  // Parses the message just read, and lets go of its bytes: gRPC would
  // otherwise keep them (a few hundred bytes) until the next message, which
  // for an idle sidecar is its next revision.
  absl::Status TakeRequest(v1::SyncRequest& request) {
    absl::Status parsed = ParseRequest(incoming_, "SyncRequest", request);
    incoming_.Clear();
    return parsed;
  }

  // The first message: the watch request.
  void Begin() {
    v1::SyncRequest request;
    if (absl::Status parsed = TakeRequest(request); !parsed.ok()) {
      End(std::move(parsed));
      return;
    }
    if (!request.has_watch()) {
      End(absl::InvalidArgumentError("the first SyncRequest of a call must carry `watch`"));
      return;
    }
    const v1::WatchRequest& req = request.watch();
    if (absl::Status admitted = service_->CheckWatch(req); !admitted.ok()) {
      End(std::move(admitted));
      return;
    }
    following_.emplace(service_->stream_deps(), this, std::move(starting_->principal_id),
                       req.sidecar_id().empty() ? ctx_->peer() : req.sidecar_id(), req.session());
    following_->stream().Start(req, std::move(starting_->admit));
    starting_.reset();
    bool cancelled;
    {
      MutexLock lock(&mu_);
      started_ = true;
      cancelled = cancelled_;
    }
    if (cancelled) following_->stream().Cancel();
    StartRead(&incoming_);
  }

  // Every later message: an acknowledgement. Only a malformed one ends the
  // stream.
  absl::Status Acknowledge(const v1::SyncRequest& request) {
    if (!request.has_acknowledgement()) {
      return absl::InvalidArgumentError(
          "after the first SyncRequest every one must carry `acknowledgement`");
    }
    const v1::SyncAcknowledgement& ack = request.acknowledgement();
    PropagationTracker& receipts = *service_->stream_deps().propagation;
    const std::string& principal_id = following_->stream().principal_id();
    if (ack.leaving()) return receipts.Left(principal_id, following_->session());
    // Not counted, and no reason to end the stream: a revision of another
    // store (the sidecar has not caught up with a restore yet), or one after
    // this replica's head (it resumed from a replica further ahead, and will
    // resync once a progress message shows it ahead). The sidecar
    // acknowledges again with its next applied revision.
    const KeyStore& store = *service_->stream_deps().store;
    if (ack.store_id() != store.store_id()) return absl::OkStatus();
    if (ack.applied_revision() > store.head_revision()) return absl::OkStatus();
    return receipts.Acknowledged(principal_id, following_->session(), ack.applied_revision(),
                                 absl::Now());
  }

  // What the stream is started with, held only until it is.
  struct Starting {
    std::string principal_id;  // the caller's; the stream keeps it
    WatchStream::Admit admit;
  };

  // A stream held for every sidecar, so only what it needs once started is
  // kept: the caller's principal, not all of Caller; requests parsed where
  // they are read; the peer asked for when the request names no sidecar.
  const SyncService* const service_;
  const grpc::CallbackServerContext* const ctx_;  // lives until OnDone
  const CallCount count_;
  std::unique_ptr<Starting> starting_;  // until the watch request starts the stream
  grpc::ByteBuffer incoming_;           // gRPC's between StartRead and OnReadDone
  std::optional<Following> following_;

  Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

// Authenticated again once the stream is in the hub: a deletion of the
// caller's principal either closes it there or is seen here.
WatchStream::Admit Reauthenticate(KeyAuthority* authority, const grpc::CallbackServerContext& ctx) {
  return [authority, token = BearerToken(ctx)] { return authority->Authenticate(token).status(); };
}

// Frees the call's headers as a map once the token has been read from them.
// Reading client_metadata() fills a std::multimap, a heap node per header,
// that gRPC keeps for the life of the call and never fills again; a stream
// lives as long as its sidecar, and nothing reads the map after Sync. (The
// map is a mutable member of the context, so no const object is modified;
// grpcpp/impl/codegen/metadata_map.h in gRPC 1.51 fills it once and only
// Reset clears it. Check both on a gRPC upgrade.)
void ReleaseHeaderMap(grpc::CallbackServerContext& ctx) {
  const_cast<std::multimap<grpc::string_ref, grpc::string_ref>&>(ctx.client_metadata()).clear();
}

}  // namespace

SyncService::SyncService(KeyAuthority* authority, KeyStore* store, EventHub* hub,
                         PropagationTracker* propagation, WorkQueue* store_work,
                         SyncServiceOptions options)
    : authority_(authority),
      store_(store),
      hub_(hub),
      propagation_(propagation),
      options_(options),
      snapshots_(*store, options.snapshot_keep_bytes),
      stream_deps_{.store = store,
                   .snapshots = &snapshots_,
                   .hub = hub,
                   .propagation = propagation,
                   .store_work = store_work,
                   .queue_limit = options.queue_limit} {
  authority_->SetPrincipalDeletedListener([hub](const std::string& principal_id) {
    hub->ClosePrincipal(principal_id, absl::UnauthenticatedError("principal deleted"));
  });
}

SyncService::~SyncService() { authority_->SetPrincipalDeletedListener(nullptr); }

absl::StatusOr<Caller> SyncService::AuthorizeFollower(
    const grpc::CallbackServerContext& ctx) const {
  absl::StatusOr<Caller> caller = AuthenticateCall(*authority_, ctx);
  if (!caller.ok()) return caller.status();
  if (absl::Status allowed = Authorize(*caller, Permission::kSync); !allowed.ok()) return allowed;
  return caller;
}

absl::Status SyncService::CheckWatch(const v1::WatchRequest& req) const {
  if (req.sidecar_id().size() > kMaxSidecarIdChars) {
    return absl::InvalidArgumentError("sidecar_id is longer than 128 characters");
  }
  if (hub_->size() >= options_.max_watchers) {
    return absl::ResourceExhaustedError("too many watch streams; retry later");
  }
  return absl::OkStatus();
}

std::vector<std::string> SyncService::SelfCounted() {
  const std::string service = StrCat("/", v1::KeySync::service_full_name(), "/");
  return {service + "Sync", service + "Watch"};
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* SyncService::Sync(
    grpc::CallbackServerContext* ctx) {
  const CallCount count(options_.metrics, "Sync");
  absl::StatusOr<Caller> caller = AuthorizeFollower(*ctx);
  if (!caller.ok()) {
    return new Refused<grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>>(
        count, caller.status());
  }
  WatchStream::Admit admit = Reauthenticate(authority_, *ctx);
  ReleaseHeaderMap(*ctx);
  return new SyncReactor(this, ctx, count, std::move(caller->principal_id), std::move(admit));
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* SyncService::Watch(grpc::CallbackServerContext* ctx,
                                                               const grpc::ByteBuffer* raw) {
  const CallCount count(options_.metrics, "Watch");
  absl::StatusOr<Caller> caller = AuthorizeFollower(*ctx);
  absl::Status status = caller.status();
  v1::WatchRequest req;
  if (status.ok()) status = ParseRequest(*raw, "WatchRequest", req);
  if (status.ok()) status = CheckWatch(req);
  if (!status.ok()) return new Refused<grpc::ServerWriteReactor<grpc::ByteBuffer>>(count, status);
  auto* reactor =
      new WatchReactor(stream_deps_, count, caller->principal_id,
                       req.sidecar_id().empty() ? ctx->peer() : req.sidecar_id(), req.session());
  WatchStream::Admit admit = Reauthenticate(authority_, *ctx);
  ReleaseHeaderMap(*ctx);
  reactor->Start(req, std::move(admit));
  return reactor;
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
  if (req.store_id() != store_->store_id()) return absl::OkStatus();
  const uint64_t head = store_->head_revision();
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
  // Summed in memory (authority/core/usage_ledger.h), with no store call: it is
  // answered here, not on the store's threads.
  reactor->Finish(ToGrpcStatus(authority_->RecordUsage(*caller, *req)));
  return reactor;
}

}  // namespace latchkey
