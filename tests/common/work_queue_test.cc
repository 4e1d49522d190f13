// The work queue on its own: order, draining on destruction, which threads
// run tasks, and real concurrency between its threads.
#include "common/work_queue.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <vector>

namespace latchkey {
namespace {

TEST_CASE("one thread runs tasks in the order they were posted") {
  std::vector<int> ran;
  {
    WorkQueue queue(1);
    for (int i = 0; i < 100; ++i) queue.Post([&ran, i] { ran.push_back(i); });
  }  // the destructor runs what was posted, then joins
  REQUIRE(ran.size() == 100);
  for (int i = 0; i < 100; ++i) REQUIRE(ran[i] == i);
}

TEST_CASE("tasks run on the queue's threads, and only there") {
  REQUIRE(!WorkQueue::OnWorkerThread());
  WorkQueue queue(2);
  std::promise<bool> on_worker;
  queue.Post([&] { on_worker.set_value(WorkQueue::OnWorkerThread()); });
  REQUIRE(on_worker.get_future().get());
  REQUIRE(!WorkQueue::OnWorkerThread());
}

TEST_CASE("tasks may own what they capture, and it is released after they run") {
  auto owned = std::make_shared<int>(7);
  std::weak_ptr<int> watch = owned;
  std::promise<int> seen;
  {
    WorkQueue queue(1);
    queue.Post([p = std::move(owned), &seen] { seen.set_value(*p); });
  }
  REQUIRE(seen.get_future().get() == 7);
  REQUIRE(watch.expired());
}

TEST_CASE("a task blocked on the disk does not hold up the others", "[concurrency]") {
  WorkQueue queue(2);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::once_flag freed;
  const auto free_first = [&] { std::call_once(freed, [&] { release.set_value(); }); };
  std::promise<void> first_done, second_done;
  queue.Post([&] {
    released.wait();  // a slow fsync
    first_done.set_value();
  });
  // With one thread the second task would never run while the first waits
  // for it.
  queue.Post([&] {
    free_first();
    second_done.set_value();
  });
  const bool side_by_side =
      second_done.get_future().wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  free_first();  // so that a queue that runs one task at a time still stops
  REQUIRE(side_by_side);
  REQUIRE(first_done.get_future().wait_for(std::chrono::seconds(10)) == std::future_status::ready);
}

TEST_CASE("many threads posting: every task runs exactly once", "[concurrency]") {
  std::atomic<int> ran{0};
  {
    WorkQueue queue(4);
    std::vector<std::thread> posters;
    for (int t = 0; t < 4; ++t) {
      posters.emplace_back([&] {
        for (int i = 0; i < 1000; ++i) queue.Post([&] { ran.fetch_add(1); });
      });
    }
    for (auto& t : posters) t.join();
  }
  REQUIRE(ran.load() == 4000);
}

}  // namespace
}  // namespace latchkey
