// A thread that runs a task every interval until stopped.
#ifndef LATCHKEY_COMMON_PERIODIC_H_
#define LATCHKEY_COMMON_PERIODIC_H_

#include <functional>
#include <thread>

#include "absl/time/time.h"
#include "common/mutex.h"

namespace latchkey {

// Runs `tick` on a thread of its own every `interval` (the first one an
// interval after construction) until Stop. `tick` runs with no lock held.
class Periodic {
 public:
  Periodic(absl::Duration interval, std::function<void()> tick);
  ~Periodic();  // Stop()

  // Wakes the thread at once, lets a tick in progress finish and joins.
  // Idempotent; after it returns `tick` never runs again. Call it from the
  // owner's thread, never from `tick`.
  void Stop();

 private:
  void Loop();

  const absl::Duration interval_;
  const std::function<void()> tick_;
  Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  CondVar stop_;  // signalled when stopping_ turns true
  std::thread thread_;
};

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_PERIODIC_H_
