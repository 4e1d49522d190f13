// The one mutex of the project: a mutex that ThreadSanitizer can see, with
// clang's thread-safety annotations.
//
// Debian's Abseil is not built with TSan: absl::Mutex locks and unlocks
// inside uninstrumented code, so TSan sees no ordering between threads that
// use it and reports every access it guards as a race. This Mutex is a
// std::mutex (a pthread mutex, which TSan intercepts) carrying clang's
// thread-safety annotations, so ABSL_GUARDED_BY still checks at compile time
// (scripts/test builds with clang -Wthread-safety -Werror).
//
// The rule: every lock in latchkey is a latchkey::Mutex, and a thread that
// waits for a condition waits on a latchkey::CondVar with a predicate; the
// code that changes what the predicate reads calls SignalAll. Our code does
// not use absl::Mutex (gRPC does, inside; see common/grpc_server.cc).
#ifndef LATCHKEY_COMMON_MUTEX_H_
#define LATCHKEY_COMMON_MUTEX_H_

#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace latchkey {

class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A MutexLock that can let go before the end of its scope.
class ABSL_SCOPED_LOCKABLE ReleasableMutexLock {
 public:
  explicit ReleasableMutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~ReleasableMutexLock() ABSL_UNLOCK_FUNCTION() {
    if (mu_ != nullptr) mu_->Unlock();
  }
  void Release() ABSL_UNLOCK_FUNCTION() {
    mu_->Unlock();
    mu_ = nullptr;
  }
  ReleasableMutexLock(const ReleasableMutexLock&) = delete;
  ReleasableMutexLock& operator=(const ReleasableMutexLock&) = delete;

 private:
  Mutex* mu_;
};

// Waits on a Mutex for another thread's signal. As with any condition
// variable, re-check the condition after Wait returns.
class CondVar {
 public:
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Held held(mu);
    cv_.wait(held.lock);
  }
  // Waits until `done()` holds (checked under `mu`).
  template <typename Predicate>
  void Wait(Mutex* mu, Predicate done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Held held(mu);
    cv_.wait(held.lock, done);
  }
  // Waits until `done()` holds or `timeout` passes; returns done().
  template <typename Predicate>
  bool WaitFor(Mutex* mu, absl::Duration timeout, Predicate done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Held held(mu);
    return cv_.wait_for(held.lock, absl::ToChronoNanoseconds(timeout), done);
  }
  void Signal() { cv_.notify_one(); }  // wakes one waiter
  void SignalAll() { cv_.notify_all(); }

 private:
  // The caller's lock, lent to the condition variable for one wait and
  // still held by the caller after it.
  struct Held {
    explicit Held(Mutex* mu) : lock(mu->mu_, std::adopt_lock) {}
    ~Held() { lock.release(); }
    std::unique_lock<std::mutex> lock;
  };
  std::condition_variable cv_;
};

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_MUTEX_H_
