#include "common/grpc_client.h"

#include <grpcpp/generic/async_generic_service.h>

#include <mutex>

namespace latchkey {

void KeepCallbackThreads() {
  static std::once_flag once;
  std::call_once(once, [] {
    // A server with a callback service and no ports counts as a user of the
    // callback queue from its start to its end, and it never ends. It takes
    // no connection and no call; no poller either, for the synchronous
    // reflection service that the linked plugin adds to every server.
    grpc::ServerBuilder builder;
    builder.RegisterCallbackGenericService(new grpc::CallbackGenericService);
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 0);
    static grpc::Server* const kept = builder.BuildAndStart().release();
    (void)kept;
  });
}

grpc::Status CallAndWait(const std::function<void(std::function<void(grpc::Status)>)>& start) {
  // Shared with the callback, which may still be returning when the caller
  // has seen the status and left.
  struct Outcome {
    Mutex mu;
    CondVar done;
    bool finished ABSL_GUARDED_BY(mu) = false;
    grpc::Status status ABSL_GUARDED_BY(mu);
  };
  KeepCallbackThreads();
  auto outcome = std::make_shared<Outcome>();
  start([outcome](grpc::Status status) {
    MutexLock lock(&outcome->mu);
    outcome->status = std::move(status);
    outcome->finished = true;
    outcome->done.SignalAll();
  });
  MutexLock lock(&outcome->mu);
  outcome->done.Wait(
      &outcome->mu, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(outcome->mu) { return outcome->finished; });
  return outcome->status;
}

}  // namespace latchkey
