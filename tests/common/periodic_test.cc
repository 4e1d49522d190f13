#include "common/periodic.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "tests/testing/testing.h"

namespace latchkey {
namespace {

TEST_CASE("a periodic task runs again and again until stopped, and never after", "[concurrency]") {
  std::atomic<int> ticks{0};
  Periodic periodic(absl::Milliseconds(2), [&] { ticks.fetch_add(1); });
  REQUIRE(testing::Eventually([&] { return ticks.load() >= 5; }));
  periodic.Stop();
  const int stopped_at = ticks.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  REQUIRE(ticks.load() == stopped_at);
  periodic.Stop();  // idempotent
}

TEST_CASE("stopping a periodic task does not wait for its interval", "[concurrency]") {
  std::atomic<int> ticks{0};
  Periodic periodic(absl::Hours(1), [&] { ticks.fetch_add(1); });
  periodic.Stop();  // would hang for an hour if the thread slept the interval out
  REQUIRE(ticks.load() == 0);
}

}  // namespace
}  // namespace latchkey
