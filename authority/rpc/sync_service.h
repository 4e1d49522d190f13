// KeySync over gRPC: the Sync stream sidecars follow (and the Watch stream
// plus unary acknowledgements of the previous release), and their usage
// reports.
#ifndef LATCHKEY_AUTHORITY_RPC_SYNC_SERVICE_H_
#define LATCHKEY_AUTHORITY_RPC_SYNC_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "authority/core/key_authority.h"
#include "authority/fanout/event_hub.h"
#include "authority/fanout/propagation.h"
#include "authority/fanout/shared_snapshots.h"
#include "authority/rpc/rpc_metrics.h"
#include "common/work_queue.h"
#include "latchkey/v1/key_sync.grpc.pb.h"

namespace latchkey {

struct SyncServiceOptions {
  size_t queue_limit = 10000;  // messages a watcher may fall behind by
  // Streams one authority holds at once; one more is RESOURCE_EXHAUSTED
  // (docs/security.md). The server keeps the default (10,000 pods per
  // replica); tests set it low to reach the limit.
  size_t max_watchers = 10000;
  // The chunks of the last snapshot read, kept for the streams that begin
  // after it, up to this many bytes (SharedSnapshots); 0: none kept.
  size_t snapshot_keep_bytes = 0;
  // Where Sync and Watch calls are counted when they finish; the server's
  // metrics interceptor skips them (SelfCounted). Null: not counted.
  const RpcMetrics* metrics = nullptr;
};

// KeySync's methods as served: the two streams are raw, so that they write
// the bytes the hub encoded once for every stream (authority/fanout/wire_response.h)
// and parse their requests themselves; the unary methods are typed. Every
// method of KeySync must be listed here.
using KeySyncMethods = v1::KeySync::WithRawCallbackMethod_Sync<
    v1::KeySync::WithRawCallbackMethod_Watch<v1::KeySync::WithCallbackMethod_ReportUsage<
        v1::KeySync::WithCallbackMethod_Acknowledge<v1::KeySync::Service>>>>;

// Thread-safe. Everything passed in must outlive the service. Store reads
// and writes (snapshots, replays) run on `store_work`, never on gRPC's
// callback threads. The service is `authority`'s principal-deleted listener
// while it lives: a deleted principal's streams end at once with
// UNAUTHENTICATED.
class SyncService final : public KeySyncMethods {
 public:
  // The methods this service counts in RpcMetrics itself (full paths, for
  // RpcMetrics::Interceptor): its two streams.
  static std::vector<std::string> SelfCounted();

  // What every following sidecar's stream is built from.
  struct StreamDeps {
    KeyStore* store;
    SharedSnapshots* snapshots;
    EventHub* hub;
    PropagationTracker* propagation;
    WorkQueue* store_work;
    size_t queue_limit;
  };

  SyncService(KeyAuthority* authority, KeyStore* store, EventHub* hub,
              PropagationTracker* propagation, WorkQueue* store_work, SyncServiceOptions options);
  ~SyncService() override;

  // Requests are SyncRequest messages, responses WatchResponse messages.
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Sync(
      grpc::CallbackServerContext* ctx) override;
  // The request is a WatchRequest, responses WatchResponse messages.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Watch(grpc::CallbackServerContext* ctx,
                                                    const grpc::ByteBuffer* req) override;
  grpc::ServerUnaryReactor* Acknowledge(grpc::CallbackServerContext* ctx,
                                        const v1::AcknowledgeRequest* req,
                                        v1::AcknowledgeResponse* resp) override;
  grpc::ServerUnaryReactor* ReportUsage(grpc::CallbackServerContext* ctx,
                                        const v1::ReportUsageRequest* req,
                                        v1::ReportUsageResponse* resp) override;

  const StreamDeps& stream_deps() const { return stream_deps_; }
  const SharedSnapshots& snapshots() const { return snapshots_; }
  // Whether a stream may start for `req`: INVALID_ARGUMENT for a sidecar id
  // that is too long, RESOURCE_EXHAUSTED when the authority holds as many
  // streams as it may.
  absl::Status CheckWatch(const v1::WatchRequest& req) const;

 private:
  // The caller of a Sync or Watch call, when it may follow the key set.
  absl::StatusOr<Caller> AuthorizeFollower(const grpc::CallbackServerContext& ctx) const;
  absl::Status CountAcknowledgement(const Caller& caller, const v1::AcknowledgeRequest& req);

  KeyAuthority* const authority_;
  KeyStore* const store_;  // authority_'s
  EventHub* const hub_;
  PropagationTracker* const propagation_;
  const SyncServiceOptions options_;
  SharedSnapshots snapshots_;
  const StreamDeps stream_deps_;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_RPC_SYNC_SERVICE_H_
