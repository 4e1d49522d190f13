// A fixed set of threads for blocking work: store reads, commits and fsyncs
// that must not run on gRPC's callback (reactor) threads, where a slow disk
// would stall every call the process serves. Callers post a task and return;
// a worker runs it. Tasks start in the order they were posted.
//
// Safe for concurrent use. The destructor runs every task already posted,
// then joins the threads.
#ifndef LATCHKEY_COMMON_WORK_QUEUE_H_
#define LATCHKEY_COMMON_WORK_QUEUE_H_

#include <deque>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "common/mutex.h"

namespace latchkey {

class WorkQueue {
 public:
  explicit WorkQueue(int threads);
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  void Post(absl::AnyInvocable<void() &&> task);

  // True on a thread of any WorkQueue: for asserting where work runs.
  static bool OnWorkerThread();

 private:
  void Run();

  Mutex mu_;
  CondVar changed_;  // a task was posted, or stopping_ turned true
  std::deque<absl::AnyInvocable<void() &&>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_WORK_QUEUE_H_
