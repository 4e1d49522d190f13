#include "authority/propagation.h"

#include <catch2/catch.hpp>
#include <thread>

#include "absl/time/clock.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

TEST_CASE("a receipt counts connected sidecars, names the missing, and times the slowest") {
  PropagationTracker t;
  const absl::Time c = absl::FromUnixSeconds(1000);
  t.Committed(5, c);
  for (const char* id : {"pod-a", "pod-b", "pod-c"}) t.Connected(id);
  t.Acknowledged("pod-a", 5, c + absl::Milliseconds(2));
  t.Acknowledged("pod-b", 7, c + absl::Milliseconds(9));
  t.Acknowledged("pod-c", 4, c + absl::Milliseconds(1));
  absl::StatusOr<v1::GetPropagationResponse> r = t.Receipt(5, 7);
  REQUIRE(r.ok());
  REQUIRE(r->sidecars_connected() == 3);
  REQUIRE(r->sidecars_applied() == 2);
  REQUIRE(r->missing_sidecar_ids_size() == 1);
  REQUIRE(r->missing_sidecar_ids(0) == "pod-c");
  REQUIRE(FromProto(r->slowest_apply_delay()) == absl::Milliseconds(9));
  REQUIRE(r->head_revision() == 7);
}

TEST_CASE(
    "a disconnected sidecar leaves the receipt but a reconnected one stays while any stream is "
    "open") {
  PropagationTracker t;
  t.Connected("pod-a");
  t.Connected("pod-a");  // new stream before the old one closed
  t.Disconnected("pod-a");
  REQUIRE(t.Receipt(1, 1)->sidecars_connected() == 1);
  t.Disconnected("pod-a");
  REQUIRE(t.Receipt(1, 1)->sidecars_connected() == 0);
  t.Acknowledged("pod-a", 1, absl::Now());  // not connected: ignored
  REQUIRE(t.Receipt(1, 1)->sidecars_applied() == 0);
}

TEST_CASE("a receipt for revision 0 or one not yet made is INVALID_ARGUMENT") {
  PropagationTracker t;
  REQUIRE(absl::IsInvalidArgument(t.Receipt(0, 5).status()));
  REQUIRE(absl::IsInvalidArgument(t.Receipt(6, 5).status()));
}

TEST_CASE("receipts read while sidecars acknowledge from many threads", "[concurrency]") {
  PropagationTracker t;
  std::vector<std::thread> pods;
  for (int p = 0; p < 4; ++p) {
    pods.emplace_back([&, p] {
      const std::string id = "pod-" + std::to_string(p);
      t.Connected(id);
      for (uint64_t r = 1; r <= 2000; ++r) {
        if (p == 0) t.Committed(r, absl::Now());
        t.Acknowledged(id, r, absl::Now());
      }
    });
  }
  for (int i = 0; i < 2000; ++i) REQUIRE(t.Receipt(1, 2000).ok());
  for (std::thread& p : pods) p.join();
  absl::StatusOr<v1::GetPropagationResponse> r = t.Receipt(2000, 2000);
  REQUIRE(r->sidecars_applied() == 4);
}

}  // namespace
}  // namespace latchkey
