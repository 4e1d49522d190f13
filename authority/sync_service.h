// KeySync over gRPC: the watch stream sidecars follow, their
// acknowledgements, and their usage reports.
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
// and writes (snapshots, replays, usage reports) run on `store_work`, never
// on gRPC's callback threads. The service is `authority`'s principal-deleted
// listener while it lives: a deleted principal's watch streams end at once
// with UNAUTHENTICATED.
class SyncService final : public v1::KeySync::CallbackService {
 public:
  SyncService(KeyAuthority* authority, EventHub* hub, PropagationTracker* propagation,
              WorkQueue* store_work, SyncServiceOptions options);
  ~SyncService() override;

  grpc::ServerWriteReactor<v1::WatchResponse>* Watch(grpc::CallbackServerContext* ctx,
                                                     const v1::WatchRequest* req) override;
  grpc::ServerUnaryReactor* Acknowledge(grpc::CallbackServerContext* ctx,
                                        const v1::AcknowledgeRequest* req,
                                        v1::AcknowledgeResponse* resp) override;
  grpc::ServerUnaryReactor* ReportUsage(grpc::CallbackServerContext* ctx,
                                        const v1::ReportUsageRequest* req,
                                        v1::ReportUsageResponse* resp) override;

 private:
  absl::Status CountAcknowledgement(const Caller& caller, const v1::AcknowledgeRequest& req);

  KeyAuthority* const authority_;
  EventHub* const hub_;
  PropagationTracker* const propagation_;
  WorkQueue* const store_work_;
  const SyncServiceOptions options_;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_SYNC_SERVICE_H_
