// sidecar/epoch.h: readers that never wait, and a writer that frees only what
// no reader can still hold.
#include "sidecar/epoch.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

namespace latchkey {
namespace {

using std::chrono::seconds;

// WaitForReaders on a thread of its own: its future is ready once it returned.
std::future<void> WaitForReadersAsync() { return std::async(std::launch::async, WaitForReaders); }

TEST_CASE("WaitForReaders waits for a guard that began before it, and returns once it ends",
          "[concurrency]") {
  std::promise<void> entered, leave;
  std::shared_future<void> may_leave = leave.get_future().share();
  std::thread reader([&] {
    EpochGuard guard;
    entered.set_value();
    may_leave.wait();
  });
  entered.get_future().wait();
  std::future<void> waited = WaitForReadersAsync();
  // While the guard is held it cannot have returned (a pause, not a measure:
  // a correct WaitForReaders never returns here however long this waits).
  const bool held_up =
      waited.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout;
  leave.set_value();
  reader.join();
  REQUIRE(held_up);
  REQUIRE(waited.wait_for(seconds(10)) == std::future_status::ready);
}

TEST_CASE("WaitForReaders with no reader in a guard returns at once", "[concurrency]") {
  // Readers that have come and gone leave no guard behind.
  std::thread([] { EpochGuard guard; }).join();
  REQUIRE(WaitForReadersAsync().wait_for(seconds(10)) == std::future_status::ready);
}

TEST_CASE("guards that begin after WaitForReaders started do not hold it up", "[concurrency]") {
  // Readers that are always inside some guard, one after another.
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        EpochGuard guard;
        std::this_thread::yield();
      }
    });
  }
  bool returned = true;
  for (int i = 0; i < 100 && returned; ++i) {
    std::future<void> waited = WaitForReadersAsync();
    returned = waited.wait_for(seconds(10)) == std::future_status::ready;
    // A stuck one returns once the readers stop (its future waits for it).
    if (!returned) stop = true;
  }
  stop = true;
  for (std::thread& t : readers) t.join();
  REQUIRE(returned);
}

TEST_CASE("a reader never sees what the writer freed", "[concurrency]") {
  // The writer replaces the object, waits for readers, then poisons and frees
  // the old one: a reader that loaded it in its guard must still see it
  // whole. (Under AddressSanitizer a read after the free is reported too.)
  constexpr uint64_t kAlive = 0x5AFE5AFE5AFE5AFE;
  struct Object {
    std::atomic<uint64_t> state{kAlive};
  };
  std::atomic<Object*> current{new Object};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad{0}, reads{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        EpochGuard guard;
        Object* o = current.load(std::memory_order_seq_cst);
        std::this_thread::yield();  // hold it a while, as a validation does
        if (o->state.load(std::memory_order_relaxed) != kAlive) bad.fetch_add(1);
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  // Readers running before the writer starts (threads start late on a
  // loaded machine), so that swaps meet readers inside their guards.
  while (reads.load() < 100) std::this_thread::yield();
  const uint64_t before = reads.load();
  for (int i = 0; i < 20000; ++i) {
    Object* old = current.exchange(new Object, std::memory_order_seq_cst);
    WaitForReaders();
    old->state.store(0, std::memory_order_relaxed);  // what a freed object may hold
    delete old;
  }
  stop = true;
  for (std::thread& t : readers) t.join();
  delete current.load();
  INFO("reads during the swaps: " << reads.load() - before);
  REQUIRE(bad.load() == 0);
}

}  // namespace
}  // namespace latchkey
