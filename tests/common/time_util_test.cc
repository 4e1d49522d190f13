#include "common/time_util.h"

#include <catch2/catch.hpp>

#include "absl/time/clock.h"

namespace latchkey {
namespace {

TEST_CASE("the coarse clock is never ahead of the wall clock and at most a tick behind") {
  for (int i = 0; i < 1000; ++i) {
    const absl::Time coarse = CoarseNow();
    const absl::Time now = absl::Now();
    // absl::Now() interpolates between its own reads of the same wall clock:
    // allow it a millisecond either way.
    REQUIRE(coarse <= now + absl::Milliseconds(1));
    REQUIRE(now - coarse < absl::Milliseconds(50));  // a tick is 1-10 ms
  }
}

}  // namespace
}  // namespace latchkey
