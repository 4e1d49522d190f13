#include "common/grpc_client.h"

namespace latchkey {

grpc::Status CallAndWait(const std::function<void(std::function<void(grpc::Status)>)>& start) {
  // Shared with the callback, which may still be returning when the caller
  // has seen the status and left.
  struct Outcome {
    Mutex mu;
    CondVar done;
    bool finished ABSL_GUARDED_BY(mu) = false;
    grpc::Status status ABSL_GUARDED_BY(mu);
  };
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
