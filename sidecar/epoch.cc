#include "sidecar/epoch.h"

#include <thread>

namespace latchkey {
namespace epoch_internal {

std::atomic<uint64_t> global_epoch{1};  // a guard's epoch is never 0

namespace {

// Every reader ever made, newest first. Readers are never freed: there are as
// many as threads that read at once, and a thread that exits leaves its
// reader to the next thread.
std::atomic<Reader*> readers{nullptr};

Reader* Acquire() {
  for (Reader* r = readers.load(std::memory_order_acquire); r != nullptr; r = r->next) {
    bool free = false;
    if (r->in_use.compare_exchange_strong(free, true, std::memory_order_acquire)) return r;
  }
  Reader* r = new Reader;
  r->in_use.store(true, std::memory_order_relaxed);
  Reader* head = readers.load(std::memory_order_relaxed);
  do {
    r->next = head;
  } while (!readers.compare_exchange_weak(head, r, std::memory_order_release,
                                          std::memory_order_relaxed));
  return r;
}

struct ThreadReader {
  Reader* reader = Acquire();
  ~ThreadReader() { reader->in_use.store(false, std::memory_order_release); }
};

}  // namespace

Reader* ThisThreadReader() {
  thread_local ThreadReader mine;
  return mine.reader;
}

}  // namespace epoch_internal

void WaitForReaders() {
  using epoch_internal::Reader;
  // Guards that began in an epoch up to `ended` may hold what was replaced;
  // guards beginning from now on load the replacement.
  const uint64_t ended = epoch_internal::global_epoch.fetch_add(1, std::memory_order_seq_cst);
  for (Reader* r = epoch_internal::readers.load(std::memory_order_acquire); r != nullptr;
       r = r->next) {
    for (;;) {
      const uint64_t e = r->epoch.load(std::memory_order_seq_cst);
      if (e == 0 || e > ended) break;
      std::this_thread::yield();
    }
  }
}

}  // namespace latchkey
