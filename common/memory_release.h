// Hands the heap memory a process freed back to the operating system once a
// burst of work is over.
//
// glibc's malloc keeps what a program frees for its next allocations, in
// the arena of whichever thread freed it, and gives back on its own only the
// top of each heap. After a burst (a fleet of sidecars syncing at once,
// revocations fanned out to every stream, streams ending in a rolling
// restart) a server's resident memory stays near the burst's high-water
// mark, in free chunks scattered over gRPC's threads' arenas, although what
// it holds live is back where it was (docs/design.md, "Giving freed memory
// back"). malloc_trim(0) returns every whole free page to the kernel.
//
// A MemoryRelease watches a count of the work that causes bursts and
// releases at the first check that finds the count still since the check
// before (the burst is over), or, while work goes on without a pause, once
// every kBusyChecks checks.
//
// A MemoryRelease is safe for concurrent access from multiple threads.
#ifndef LATCHKEY_COMMON_MEMORY_RELEASE_H_
#define LATCHKEY_COMMON_MEMORY_RELEASE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "absl/time/time.h"
#include "common/periodic.h"

namespace latchkey {

class MemoryRelease {
 public:
  // Checks a release needs, at most, while work never pauses.
  static constexpr int kBusyChecks = 60;
  // The checking thread's name.
  static constexpr char kThreadName[] = "memory-release";

  // Gives freed memory back.
  using Release = std::function<void()>;
  // Releases with malloc_trim(0).
  static void Trim();

  // Checks every `interval` (never when it is zero: the owner calls Check).
  // `work` answers a count that grows with the work that leaves memory
  // behind; it is read on the checking thread.
  MemoryRelease(absl::Duration interval, std::function<uint64_t()> work, Release release = Trim);
  ~MemoryRelease();  // Stop()

  // Stops checking: lets a check in progress finish, and none follows.
  // Idempotent.
  void Stop();

  // One check: releases when work was done since the last release and none
  // since the last check (or kBusyChecks checks went by). Called by the
  // checking thread; calls must not overlap.
  void Check();

  uint64_t releases() const { return releases_.load(std::memory_order_relaxed); }
  double release_seconds() const {
    return static_cast<double>(release_nanos_.load(std::memory_order_relaxed)) * 1e-9;
  }
  // How much resident memory went down across each release, summed
  // (approximate: other threads allocate and free meanwhile).
  uint64_t released_bytes() const { return released_bytes_.load(std::memory_order_relaxed); }

 private:
  const std::function<uint64_t()> work_;
  const Release release_;
  // Check's own, never touched by another thread.
  uint64_t work_at_check_ = 0;
  uint64_t work_at_release_ = 0;
  int busy_checks_ = 0;  // checks since the last release that found new work

  std::atomic<uint64_t> releases_{0};
  std::atomic<uint64_t> release_nanos_{0};
  std::atomic<uint64_t> released_bytes_{0};
  std::unique_ptr<Periodic> checker_;  // last: stopped first
};

// This process's resident memory in bytes (0 when it cannot be read).
uint64_t ResidentBytes();

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_MEMORY_RELEASE_H_
