#include "authority/fanout/propagation.h"

#include <malloc.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

}  // namespace
}  // namespace latchkey

// Under ASan or TSan, the sanitizer's allocator counts the heap; glibc's
// does otherwise.
extern "C" size_t __sanitizer_get_current_allocated_bytes() __attribute__((weak));

namespace latchkey {
namespace {

// Bytes of heap the program holds now.
size_t HeapInUse() {
  if (__sanitizer_get_current_allocated_bytes != nullptr) {
    return __sanitizer_get_current_allocated_bytes();
  }
  return mallinfo2().uordblks;
}

// Opens a stream for `sidecar_id` under principal "p-1" at kT0.
PropagationTracker::Stream Open(PropagationTracker& t, const std::string& sidecar_id,
                                const std::string& resume = "") {
  return t.Opened("p-1", sidecar_id, resume, kT0);
}

TEST_CASE("a receipt counts connected sidecars, names the missing, and times the slowest") {
  PropagationTracker t;
  t.Committed(5, kT0);
  const auto a = Open(t, "pod-a"), b = Open(t, "pod-b"), c = Open(t, "pod-c");
  REQUIRE(t.Acknowledged("p-1", a.session, 5, kT0 + absl::Milliseconds(2)).ok());
  REQUIRE(t.Acknowledged("p-1", b.session, 7, kT0 + absl::Milliseconds(9)).ok());
  REQUIRE(t.Acknowledged("p-1", c.session, 4, kT0 + absl::Milliseconds(1)).ok());
  absl::StatusOr<v1::GetPropagationResponse> r = t.Receipt(5, 7, kT0);
  REQUIRE(r.ok());
  REQUIRE(r->sidecars_connected() == 3);
  REQUIRE(r->sidecars_disconnected() == 0);
  REQUIRE(r->sidecars_applied() == 2);
  REQUIRE(r->missing_sidecar_ids_size() == 1);
  REQUIRE(r->missing_sidecar_ids(0) == "pod-c");
  REQUIRE(r->missing_sidecars(0).sidecar_id() == "pod-c");
  REQUIRE_FALSE(r->missing_sidecars(0).has_disconnected_time());
  REQUIRE(FromProto(r->slowest_apply_delay()) == absl::Milliseconds(9));
  REQUIRE(r->head_revision() == 7);
}

TEST_CASE("every stream gets its own unguessable session") {
  PropagationTracker t;
  const auto a = Open(t, "pod-a"), b = Open(t, "pod-a");
  REQUIRE(a.session.size() >= 32);
  REQUIRE(a.session != b.session);
}

TEST_CASE("an acknowledgement counts only for the session it names, opened by its principal") {
  PropagationTracker t;
  const auto a = Open(t, "pod-a");
  REQUIRE(absl::IsFailedPrecondition(t.Acknowledged("p-1", "", 1, kT0)));
  REQUIRE(absl::IsFailedPrecondition(t.Acknowledged("p-1", "not-a-session", 1, kT0)));
  REQUIRE(absl::IsFailedPrecondition(t.Acknowledged("p-2", a.session, 1, kT0)));
  REQUIRE(t.Receipt(1, 1, kT0)->sidecars_applied() == 0);
  REQUIRE(t.Acknowledged("p-1", a.session, 1, kT0).ok());
  REQUIRE(t.Receipt(1, 1, kT0)->sidecars_applied() == 1);
}

TEST_CASE("two streams that claim the same sidecar id must both apply") {
  PropagationTracker t;
  const auto real = Open(t, "pod-x");
  const auto impostor = Open(t, "pod-x");
  REQUIRE(t.Acknowledged("p-1", impostor.session, 9, kT0).ok());
  absl::StatusOr<v1::GetPropagationResponse> r = t.Receipt(9, 9, kT0);
  REQUIRE(r->sidecars_connected() == 2);
  REQUIRE(r->sidecars_applied() == 1);
  REQUIRE(r->missing_sidecar_ids(0) == "pod-x");
  REQUIRE(t.Acknowledged("p-1", real.session, 9, kT0).ok());
  REQUIRE(t.Receipt(9, 9, kT0)->sidecars_applied() == 2);
}

TEST_CASE("a sidecar gone without a goodbye stays missing until it is forgotten") {
  PropagationTracker t(absl::Minutes(10));
  const auto gone = Open(t, "pod-2");
  REQUIRE(t.Acknowledged("p-1", gone.session, 3, kT0).ok());
  t.Closed(gone, kT0 + absl::Seconds(1));

  // It had applied 3: that receipt stays complete.
  absl::StatusOr<v1::GetPropagationResponse> old = t.Receipt(3, 4, kT0 + absl::Seconds(42));
  REQUIRE(old->sidecars_applied() == 1);
  REQUIRE(old->sidecars_disconnected() == 1);
  // Revision 4 came after it went away: missing, with when it went.
  absl::StatusOr<v1::GetPropagationResponse> r = t.Receipt(4, 4, kT0 + absl::Seconds(42));
  REQUIRE(r->sidecars_connected() == 0);
  REQUIRE(r->sidecars_disconnected() == 1);
  REQUIRE(r->sidecars_applied() == 0);
  REQUIRE(r->missing_sidecars(0).sidecar_id() == "pod-2");
  REQUIRE(FromProto(r->missing_sidecars(0).disconnected_time()) == kT0 + absl::Seconds(1));

  r = t.Receipt(4, 4, kT0 + absl::Seconds(1) + absl::Minutes(10) + absl::Seconds(1));
  REQUIRE(r->sidecars_disconnected() == 0);
  REQUIRE(r->missing_sidecars_size() == 0);
}

TEST_CASE("a sidecar that leaves cleanly is gone from receipts at once") {
  PropagationTracker t;
  const auto s = Open(t, "pod-1");
  REQUIRE(absl::IsFailedPrecondition(t.Left("p-2", s.session)));
  REQUIRE(t.Left("p-1", s.session).ok());
  t.Closed(s, kT0);  // its stream ends after the goodbye
  absl::StatusOr<v1::GetPropagationResponse> r = t.Receipt(1, 1, kT0);
  REQUIRE(r->sidecars_connected() == 0);
  REQUIRE(r->sidecars_disconnected() == 0);
}

TEST_CASE("a reconnecting sidecar resumes its session instead of leaving itself behind") {
  PropagationTracker t;
  const auto first = Open(t, "pod-1");
  REQUIRE(t.Acknowledged("p-1", first.session, 2, kT0).ok());
  t.Closed(first, kT0);
  const auto second = Open(t, "pod-1", first.session);
  REQUIRE(second.session == first.session);
  absl::StatusOr<v1::GetPropagationResponse> r = t.Receipt(2, 2, kT0);
  REQUIRE(r->sidecars_connected() == 1);
  REQUIRE(r->sidecars_disconnected() == 0);
  REQUIRE(r->sidecars_applied() == 1);

  SECTION("the stream it replaced ending late does not mark it gone") {
    const auto third = Open(t, "pod-1", first.session);
    t.Closed(second, kT0);
    REQUIRE(t.Receipt(2, 2, kT0)->sidecars_connected() == 1);
    t.Closed(third, kT0);
    REQUIRE(t.Receipt(2, 2, kT0)->sidecars_disconnected() == 1);
  }
  SECTION("another principal or sidecar id cannot take the session over") {
    const auto other = t.Opened("p-2", "pod-1", first.session, kT0);
    REQUIRE(other.session != first.session);
    const auto renamed = Open(t, "pod-9", first.session);
    REQUIRE(renamed.session != first.session);
    REQUIRE(t.Receipt(2, 2, kT0)->sidecars_connected() == 3);
  }
}

TEST_CASE("disconnected sidecars are bounded: the oldest is forgotten first") {
  PropagationTracker t(absl::Hours(1), /*max_disconnected=*/3);
  for (int i = 0; i < 5; ++i) {
    t.Closed(Open(t, "pod-" + std::to_string(i)), kT0 + absl::Seconds(i));
  }
  absl::StatusOr<v1::GetPropagationResponse> r = t.Receipt(1, 1, kT0 + absl::Seconds(10));
  REQUIRE(r->sidecars_disconnected() == 3);
  REQUIRE(r->missing_sidecar_ids(0) == "pod-2");
}

TEST_CASE("a receipt for revision 0 or one not yet made is INVALID_ARGUMENT") {
  PropagationTracker t;
  REQUIRE(absl::IsInvalidArgument(t.Receipt(0, 5, kT0).status()));
  REQUIRE(absl::IsInvalidArgument(t.Receipt(6, 5, kT0).status()));
}

TEST_CASE("a receipt counts the sidecars another replica shares, with their delays") {
  // Replica B: pod-b applied 5 after 30 ms, pod-c is gone at 4.
  PropagationTracker b;
  b.Committed(5, kT0);
  const auto pod_b = b.Opened("p-1", "pod-b", "", kT0);
  const auto pod_c = b.Opened("p-1", "pod-c", "", kT0);
  REQUIRE(b.Acknowledged("p-1", pod_b.session, 5, kT0 + absl::Milliseconds(30)).ok());
  REQUIRE(b.Acknowledged("p-1", pod_c.session, 4, kT0).ok());
  b.Closed(pod_c, kT0 + absl::Seconds(1));
  const uint64_t before = b.version();
  const internal::SharedReceipts shared = b.Share(kT0 + absl::Seconds(2));
  REQUIRE(shared.sidecars_size() == 2);
  REQUIRE(shared.delays_size() == 1);

  // Replica A: pod-a applied 5 after 2 ms.
  PropagationTracker a;
  a.Committed(5, kT0);
  const auto pod_a = Open(a, "pod-a");
  REQUIRE(a.Acknowledged("p-1", pod_a.session, 5, kT0 + absl::Milliseconds(2)).ok());
  absl::StatusOr<v1::GetPropagationResponse> r = a.Receipt(5, 5, kT0, {shared});
  REQUIRE(r.ok());
  REQUIRE(r->sidecars_connected() == 2);
  REQUIRE(r->sidecars_disconnected() == 1);
  REQUIRE(r->sidecars_applied() == 2);
  REQUIRE(r->missing_sidecar_ids_size() == 1);
  REQUIRE(r->missing_sidecars(0).sidecar_id() == "pod-c");
  REQUIRE(FromProto(r->missing_sidecars(0).disconnected_time()) == kT0 + absl::Seconds(1));
  REQUIRE(FromProto(r->slowest_apply_delay()) == absl::Milliseconds(30));

  // Without B's share only pod-a counts; B's state changing moves its version.
  REQUIRE(a.Receipt(5, 5, kT0)->sidecars_connected() == 1);
  REQUIRE(b.Acknowledged("p-1", pod_b.session, 6, kT0).ok());
  REQUIRE(b.version() != before);
}

TEST_CASE("a replica shares the delays of its newest revisions only") {
  PropagationTracker t;
  const auto s = Open(t, "pod-a");
  for (uint64_t r = 1; r <= 100; ++r) {
    t.Committed(r, kT0);
    REQUIRE(t.Acknowledged("p-1", s.session, r, kT0 + absl::Milliseconds(r)).ok());
  }
  const internal::SharedReceipts shared = t.Share(kT0);
  REQUIRE(shared.delays_size() == PropagationTracker::kSharedDelays);
  REQUIRE(shared.delays(0).revision() == 100 - PropagationTracker::kSharedDelays + 1);
  REQUIRE(shared.delays().rbegin()->revision() == 100);
  REQUIRE(shared.delays().rbegin()->slowest_micros() == 100000);
}

TEST_CASE("a sidecar's entry in receipts does not grow with the revisions it acknowledges") {
  // 10,000 pods times every revision kept would be a gigabyte: what a
  // sidecar costs receipts must not depend on how many revisions it applied.
  PropagationTracker t;
  constexpr int kSidecars = 200;
  std::vector<PropagationTracker::Stream> streams;
  for (int i = 0; i < kSidecars; ++i) streams.push_back(Open(t, "pod-" + std::to_string(i)));
  const size_t before = HeapInUse();
  for (uint64_t r = 1; r <= PropagationTracker::kHistory; ++r) {
    t.Committed(r, kT0);
    for (const auto& s : streams) {
      REQUIRE(t.Acknowledged("p-1", s.session, r, kT0 + absl::Milliseconds(r)).ok());
    }
  }
  const size_t after = HeapInUse();
  // The revisions' own timings are about 300 KB; a history kept per sidecar
  // would be 200 times 4,096 acknowledgements, about 20 MB.
  CHECK(after - std::min(after, before) < 2u << 20);
  absl::StatusOr<v1::GetPropagationResponse> r =
      t.Receipt(PropagationTracker::kHistory, PropagationTracker::kHistory, kT0);
  REQUIRE(r.ok());
  REQUIRE(r->sidecars_applied() == kSidecars);
  REQUIRE(FromProto(r->slowest_apply_delay()) == absl::Milliseconds(PropagationTracker::kHistory));
}

TEST_CASE("a delay once seen stays in the receipt after its sidecar leaves") {
  PropagationTracker t;
  t.Committed(5, kT0);
  const auto slow = Open(t, "pod-slow"), fast = Open(t, "pod-fast");
  REQUIRE(t.Acknowledged("p-1", fast.session, 5, kT0 + absl::Milliseconds(1)).ok());
  REQUIRE(t.Acknowledged("p-1", slow.session, 6, kT0 + absl::Milliseconds(40)).ok());
  REQUIRE(t.Left("p-1", slow.session).ok());
  absl::StatusOr<v1::GetPropagationResponse> r = t.Receipt(5, 6, kT0);
  REQUIRE(r.ok());
  REQUIRE(r->sidecars_applied() == 1);
  REQUIRE(FromProto(r->slowest_apply_delay()) == absl::Milliseconds(40));
}

TEST_CASE("receipts read while sidecars acknowledge from many threads", "[concurrency]") {
  PropagationTracker t;
  std::atomic<int> refused{0};  // Catch2 assertions are not thread-safe
  std::vector<std::thread> pods;
  for (int p = 0; p < 4; ++p) {
    pods.emplace_back([&, p] {
      const std::string id = "pod-" + std::to_string(p);
      const auto s = t.Opened("p-1", id, "", absl::Now());
      for (uint64_t r = 1; r <= 2000; ++r) {
        if (p == 0) t.Committed(r, absl::Now());
        if (!t.Acknowledged("p-1", s.session, r, absl::Now()).ok()) ++refused;
      }
      if (p == 3) t.Closed(s, absl::Now());
    });
  }
  for (int i = 0; i < 2000; ++i) REQUIRE(t.Receipt(1, 2000, absl::Now()).ok());
  for (std::thread& p : pods) p.join();
  REQUIRE(refused == 0);
  absl::StatusOr<v1::GetPropagationResponse> r = t.Receipt(2000, 2000, absl::Now());
  REQUIRE(r->sidecars_applied() == 4);
  REQUIRE(r->sidecars_disconnected() == 1);
}

}  // namespace
}  // namespace latchkey
