// The event hub on its own: fan-out in publish order, progress ticks naming
// the head, Remove, CloseAll and a prompt stop.
#include "authority/fanout/event_hub.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

class Recorder : public Subscriber {
 public:
  explicit Recorder(std::string principal_id = "prn_recorder")
      : principal_id_(std::move(principal_id)) {}

  void Deliver(const SharedResponse& message) override {
    MutexLock lock(&mu_);
    messages_.push_back(message);
  }
  void Close(const absl::Status& why) override {
    MutexLock lock(&mu_);
    closed_ = why;
  }
  const std::string& principal_id() const override { return principal_id_; }
  std::vector<uint64_t> EventRevisions() {
    MutexLock lock(&mu_);
    std::vector<uint64_t> out;
    for (const auto& m : messages_) {
      if (v1::WatchResponse d = m->Decode(); d.has_event()) out.push_back(d.event().revision());
    }
    return out;
  }
  std::vector<uint64_t> ProgressHeads() {
    MutexLock lock(&mu_);
    std::vector<uint64_t> out;
    for (const auto& m : messages_) {
      if (m->is_progress()) out.push_back(m->Decode().progress().head_revision());
    }
    return out;
  }
  // Why it was closed; nullopt while open.
  std::optional<absl::Status> closed() {
    MutexLock lock(&mu_);
    return closed_;
  }
  std::string first_store_id() {
    MutexLock lock(&mu_);
    return messages_.empty() ? "" : messages_.front()->Decode().store_id();
  }

 private:
  Mutex mu_;
  std::vector<SharedResponse> messages_ ABSL_GUARDED_BY(mu_);
  const std::string principal_id_;
  std::optional<absl::Status> closed_ ABSL_GUARDED_BY(mu_);
};

v1::KeyEvent Event(uint64_t revision) {
  v1::KeyEvent e;
  e.set_revision(revision);
  return e;
}

TEST_CASE("every subscriber hears every published event, in order, with the store id") {
  // Subscribers outlive the hub (declared first): the hub calls them until
  // it is gone or they are removed.
  Recorder a, b;
  EventHub hub("st_1", absl::Hours(1), [] { return uint64_t{0}; });
  hub.Add(&a);
  hub.Add(&b);
  REQUIRE(hub.size() == 2);
  for (uint64_t r = 1; r <= 5; ++r) hub.Publish(Event(r));
  REQUIRE(a.EventRevisions() == std::vector<uint64_t>{1, 2, 3, 4, 5});
  REQUIRE(b.EventRevisions() == a.EventRevisions());
  REQUIRE(a.first_store_id() == "st_1");
}

TEST_CASE("a removed subscriber hears nothing more") {
  Recorder kept, removed;
  EventHub hub("st_1", absl::Hours(1), [] { return uint64_t{0}; });
  hub.Add(&kept);
  hub.Add(&removed);
  hub.Publish(Event(1));
  hub.Remove(&removed);
  REQUIRE(hub.size() == 1);
  hub.Publish(Event(2));
  REQUIRE(kept.EventRevisions() == std::vector<uint64_t>{1, 2});
  REQUIRE(removed.EventRevisions() == std::vector<uint64_t>{1});
}

TEST_CASE("the hub counts subscribers come and gone and events published, not progress") {
  Recorder r;
  EventHub hub("st_1", absl::Milliseconds(1), [] { return uint64_t{0}; });
  hub.Add(&r);
  REQUIRE(hub.changes() == 1);
  hub.Publish(Event(1));
  REQUIRE(hub.changes() == 2);
  REQUIRE(testing::Eventually([&] { return r.ProgressHeads().size() >= 3; }));
  REQUIRE(hub.changes() == 2);
  hub.Remove(&r);
  REQUIRE(hub.changes() == 3);
}

TEST_CASE("progress messages tick at the interval and name the current head") {
  std::atomic<uint64_t> head{7};
  Recorder r;
  EventHub hub("st_1", absl::Milliseconds(5), [&] { return head.load(); });
  hub.Add(&r);
  REQUIRE(testing::Eventually([&] { return r.ProgressHeads().size() >= 2; }));
  head = 9;
  REQUIRE(testing::Eventually([&] {
    const std::vector<uint64_t> heads = r.ProgressHeads();
    return heads.back() == 9;
  }));
  for (uint64_t h : r.ProgressHeads()) REQUIRE((h == 7 || h == 9));
}

TEST_CASE("CloseAll closes every subscriber with the status given") {
  Recorder a, b;
  EventHub hub("st_1", absl::Hours(1), [] { return uint64_t{0}; });
  hub.Add(&a);
  hub.Add(&b);
  hub.CloseAll(absl::UnavailableError("stopping"));
  REQUIRE(a.closed() == absl::UnavailableError("stopping"));
  REQUIRE(b.closed() == absl::UnavailableError("stopping"));
}

TEST_CASE("ClosePrincipal closes the subscribers that principal opened, and no other") {
  Recorder first("prn_gone"), second("prn_gone"), other("prn_stays");
  EventHub hub("st_1", absl::Hours(1), [] { return uint64_t{0}; });
  hub.Add(&first);
  hub.Add(&second);
  hub.Add(&other);
  hub.ClosePrincipal("prn_gone", absl::UnauthenticatedError("principal deleted"));
  REQUIRE(first.closed() == absl::UnauthenticatedError("principal deleted"));
  REQUIRE(second.closed() == absl::UnauthenticatedError("principal deleted"));
  REQUIRE_FALSE(other.closed().has_value());
}

TEST_CASE("destroying the hub stops its ticker at once, whatever the interval") {
  const auto start = std::chrono::steady_clock::now();
  {
    EventHub hub("st_1", absl::Hours(1), [] { return uint64_t{0}; });
  }
  // A ticker that slept out its interval would hold this for an hour.
  REQUIRE(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
}

TEST_CASE("publishing while subscribers come and go delivers in order to each", "[concurrency]") {
  Recorder steady;
  EventHub hub("st_1", absl::Milliseconds(1), [] { return uint64_t{0}; });
  hub.Add(&steady);
  std::atomic<bool> done{false};
  std::thread churn([&] {
    while (!done) {
      Recorder passing;
      hub.Add(&passing);
      hub.Remove(&passing);
    }
  });
  for (uint64_t r = 1; r <= 2000; ++r) hub.Publish(Event(r));
  done = true;
  churn.join();
  const std::vector<uint64_t> seen = steady.EventRevisions();
  REQUIRE(seen.size() == 2000);
  for (size_t i = 0; i < seen.size(); ++i) REQUIRE(seen[i] == i + 1);
}

}  // namespace
}  // namespace latchkey
