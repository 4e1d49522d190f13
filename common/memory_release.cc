#include "common/memory_release.h"

#include <malloc.h>
#include <pthread.h>
#include <unistd.h>

#include <cstdio>

#include "absl/time/clock.h"

namespace latchkey {

void MemoryRelease::Trim() { malloc_trim(0); }

MemoryRelease::MemoryRelease(absl::Duration interval, std::function<uint64_t()> work,
                             Release release)
    : work_(std::move(work)), release_(std::move(release)) {
  if (interval > absl::ZeroDuration()) {
    checker_ = std::make_unique<Periodic>(interval, [this, named = false]() mutable {
      // Named, so that `top -H` and the fleet bench can tell its CPU apart.
      if (!named) named = pthread_setname_np(pthread_self(), kThreadName) == 0;
      Check();
    });
  }
}

MemoryRelease::~MemoryRelease() { Stop(); }

void MemoryRelease::Stop() {
  if (checker_ != nullptr) checker_->Stop();
}

void MemoryRelease::Check() {
  const uint64_t work = work_();
  const bool quiet = work == work_at_check_;
  work_at_check_ = work;
  if (work == work_at_release_) return;  // nothing left behind since
  if (!quiet && ++busy_checks_ < kBusyChecks) return;
  const uint64_t before = ResidentBytes();
  const absl::Time start = absl::Now();
  release_();
  release_nanos_.fetch_add(absl::ToInt64Nanoseconds(absl::Now() - start),
                           std::memory_order_relaxed);
  const uint64_t after = ResidentBytes();
  if (after < before) released_bytes_.fetch_add(before - after, std::memory_order_relaxed);
  releases_.fetch_add(1, std::memory_order_relaxed);
  work_at_release_ = work;
  busy_checks_ = 0;
}

uint64_t ResidentBytes() {
  FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const bool read = std::fscanf(statm, "%lu %lu", &size, &resident) == 2;
  std::fclose(statm);
  return read ? static_cast<uint64_t>(resident) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace latchkey
