// Epoch-based reclamation: readers that never wait, and a writer that frees
// what it replaced only once no reader can still hold it (the read side of
// RCU; docs/design.md, "The sidecar's key table").
//
// A reader wraps each access in an EpochGuard: two stores to a cache line of
// its own thread, no lock, no shared counter. A writer publishes a new
// pointer, then calls WaitForReaders(), which returns once every guard that
// might have loaded the old pointer has ended; the old object can then be
// freed.
//
// Thread-safe. Guards do not nest: a thread holds at most one at a time.
#ifndef LATCHKEY_SIDECAR_EPOCH_H_
#define LATCHKEY_SIDECAR_EPOCH_H_

#include <atomic>
#include <cstdint>

namespace latchkey {

namespace epoch_internal {

// One per thread that has ever read, reused after the thread exits.
struct alignas(64) Reader {
  // 0 outside a guard; inside, the global epoch the guard began in.
  std::atomic<uint64_t> epoch{0};
  std::atomic<bool> in_use{false};
  Reader* next = nullptr;  // constant once the reader is on the list
};

Reader* ThisThreadReader();
extern std::atomic<uint64_t> global_epoch;

}  // namespace epoch_internal

class EpochGuard {
 public:
  EpochGuard() : reader_(epoch_internal::ThisThreadReader()) {
    // seq_cst: the store must be visible before this thread loads any
    // pointer a writer may be replacing (WaitForReaders relies on it).
    reader_->epoch.store(epoch_internal::global_epoch.load(std::memory_order_acquire),
                         std::memory_order_seq_cst);
  }
  ~EpochGuard() { reader_->epoch.store(0, std::memory_order_release); }
  EpochGuard(const EpochGuard&) = delete;
  EpochGuard& operator=(const EpochGuard&) = delete;

 private:
  epoch_internal::Reader* const reader_;
};

// Returns once every EpochGuard that began before this call has ended. Call
// it after publishing a replacement (with a seq_cst or release store) and
// before freeing what was replaced. Never call it inside a guard.
void WaitForReaders();

}  // namespace latchkey

#endif  // LATCHKEY_SIDECAR_EPOCH_H_
