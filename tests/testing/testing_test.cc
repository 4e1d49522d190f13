// The test harness's own promises, which every server-starting test rests on.
#include "tests/testing/testing.h"

#include <catch2/catch.hpp>
#include <set>

namespace latchkey::testing {
namespace {

TEST_CASE("PickFreePort never hands out one port twice in a process") {
  // A port just closed can come back from the next bind to port 0; two
  // servers of one test given the same port fail to start (an etcd cluster
  // once got one peer port for two members).
  std::set<int> seen;
  for (int i = 0; i < 3000; ++i) {
    const int port = PickFreePort();
    REQUIRE(port > 0);
    REQUIRE(seen.insert(port).second);
  }
}

}  // namespace
}  // namespace latchkey::testing
