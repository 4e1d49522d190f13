// The one mutex of the project: a reader/writer mutex that ThreadSanitizer
// can see, with clang's thread-safety annotations.
//
// Debian's Abseil is not built with TSan: absl::Mutex locks and unlocks
// inside uninstrumented code, so TSan sees no ordering between threads that
// use it and reports every access it guards as a race. This Mutex is a
// std::shared_mutex (pthread rwlock, which TSan intercepts) carrying clang's
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
#include <shared_mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace latchkey {

class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  void ReaderLock() ABSL_SHARED_LOCK_FUNCTION() { mu_.lock_shared(); }
  void ReaderUnlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock_shared(); }

 private:
  std::shared_mutex mu_;
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

class ABSL_SCOPED_LOCKABLE ReaderMutexLock {
 public:
  explicit ReaderMutexLock(Mutex* mu) ABSL_SHARED_LOCK_FUNCTION(mu) : mu_(mu) { mu_->ReaderLock(); }
  ~ReaderMutexLock() ABSL_UNLOCK_FUNCTION() { mu_->ReaderUnlock(); }
  ReaderMutexLock(const ReaderMutexLock&) = delete;
  ReaderMutexLock& operator=(const ReaderMutexLock&) = delete;

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
    Adapter held{mu};
    cv_.wait(held);
  }
  // Waits until `done()` holds (checked under `mu`).
  template <typename Predicate>
  void Wait(Mutex* mu, Predicate done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Adapter held{mu};
    cv_.wait(held, done);
  }
  // Waits until `done()` holds or `timeout` passes; returns done().
  template <typename Predicate>
  bool WaitFor(Mutex* mu, absl::Duration timeout, Predicate done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Adapter held{mu};
    return cv_.wait_for(held, absl::ToChronoNanoseconds(timeout), done);
  }
  void Signal() { cv_.notify_one(); }  // wakes one waiter
  void SignalAll() { cv_.notify_all(); }

 private:
  struct Adapter {
    Mutex* mu;
    void lock() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu->Lock(); }
    void unlock() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu->Unlock(); }
  };
  std::condition_variable_any cv_;
};

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_MUTEX_H_
