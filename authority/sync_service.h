// KeySync over gRPC: the Sync stream sidecars follow (and the Watch stream
// plus unary acknowledgements of the previous release), and their usage
// reports.
#ifndef LATCHKEY_AUTHORITY_SYNC_SERVICE_H_
#define LATCHKEY_AUTHORITY_SYNC_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "authority/event_hub.h"
#include "authority/key_authority.h"
#include "authority/propagation.h"
#include "common/work_queue.h"
#include "latchkey/v1/key_sync.grpc.pb.h"

namespace latchkey {

struct SyncServiceOptions {
  size_t queue_limit = 10000;  // messages a watcher may fall behind by
  size_t max_watchers = 10000;
};

// Thread-safe. Everything passed in must outlive the service. Store reads
// and writes (snapshots, replays) run on `store_work`, never on gRPC's
// callback threads. The service is `authority`'s principal-deleted listener
// while it lives: a deleted principal's streams end at once with
// UNAUTHENTICATED.
class SyncService final : public v1::KeySync::CallbackService {
 public:
  // What every following sidecar's stream is built from.
  struct StreamDeps {
    KeyStore* store;
    EventHub* hub;
    PropagationTracker* propagation;
    WorkQueue* store_work;
    size_t queue_limit;
  };

  SyncService(KeyAuthority* authority, EventHub* hub, PropagationTracker* propagation,
              WorkQueue* store_work, SyncServiceOptions options);
  ~SyncService() override;

  grpc::ServerBidiReactor<v1::SyncRequest, v1::WatchResponse>* Sync(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerWriteReactor<v1::WatchResponse>* Watch(grpc::CallbackServerContext* ctx,
                                                     const v1::WatchRequest* req) override;
  grpc::ServerUnaryReactor* Acknowledge(grpc::CallbackServerContext* ctx,
                                        const v1::AcknowledgeRequest* req,
                                        v1::AcknowledgeResponse* resp) override;
  grpc::ServerUnaryReactor* ReportUsage(grpc::CallbackServerContext* ctx,
                                        const v1::ReportUsageRequest* req,
                                        v1::ReportUsageResponse* resp) override;

  const StreamDeps& stream_deps() const { return stream_deps_; }
  // Whether a stream may start for `req`: INVALID_ARGUMENT for a sidecar id
  // that is too long, RESOURCE_EXHAUSTED when the authority holds as many
  // streams as it may.
  absl::Status CheckWatch(const v1::WatchRequest& req) const;

 private:
  // The caller of a Sync or Watch call, when it may follow the key set.
  absl::StatusOr<Caller> AuthorizeFollower(const grpc::CallbackServerContext& ctx) const;
  absl::Status CountAcknowledgement(const Caller& caller, const v1::AcknowledgeRequest& req);

  KeyAuthority* const authority_;
  EventHub* const hub_;
  PropagationTracker* const propagation_;
  const SyncServiceOptions options_;
  const StreamDeps stream_deps_;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_SYNC_SERVICE_H_
