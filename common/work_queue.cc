#include "common/work_queue.h"

namespace latchkey {
namespace {

thread_local bool on_worker = false;

}  // namespace

WorkQueue::WorkQueue(int threads) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

WorkQueue::~WorkQueue() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    changed_.SignalAll();
  }
  for (std::thread& t : threads_) t.join();
}

void WorkQueue::Post(absl::AnyInvocable<void() &&> task) {
  MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
  changed_.Signal();
}

bool WorkQueue::OnWorkerThread() { return on_worker; }

void WorkQueue::Run() {
  on_worker = true;
  for (;;) {
    absl::AnyInvocable<void() &&> task;
    {
      MutexLock lock(&mu_);
      changed_.Wait(&mu_, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !tasks_.empty();
      });
      if (tasks_.empty()) return;  // stopping, and nothing left to run
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    std::move(task)();
  }
}

}  // namespace latchkey
