#include "sidecar/usage.h"

#include <catch2/catch.hpp>
#include <thread>

#include "absl/time/clock.h"
#include "common/key_format.h"
#include "common/time_util.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

TEST_CASE("usage counts add up per key with the latest use time") {
  UsageCounter usage;
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  usage.Record("key_a", t);
  usage.Record("key_a", t + absl::Seconds(5));
  usage.Record("key_a", t + absl::Seconds(2));
  usage.Record("key_b", t);
  v1::ReportUsageRequest req = usage.Drain();
  std::map<std::string, std::pair<uint64_t, int64_t>> got;
  for (const v1::KeyUsage& u : req.usage()) {
    got[u.key_id()] = {u.count(), u.last_used_time().seconds()};
  }
  REQUIRE(got["key_a"] == std::pair<uint64_t, int64_t>{3, 1700000005});
  REQUIRE(got["key_b"] == std::pair<uint64_t, int64_t>{1, 1700000000});
  REQUIRE(usage.Drain().usage().empty());
}

TEST_CASE("rejections are counted apart from valid uses, with the latest rejection time") {
  UsageCounter usage;
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  usage.Record("key_a", t);
  usage.RecordRejected("key_a", t + absl::Seconds(3));
  usage.RecordRejected("key_a", t + absl::Seconds(1));
  usage.RecordRejected("key_r", t);
  v1::ReportUsageRequest req = usage.Drain();
  std::map<std::string, v1::KeyUsage> got;
  for (const v1::KeyUsage& u : req.usage()) got[u.key_id()] = u;
  REQUIRE(got["key_a"].count() == 1);
  REQUIRE(got["key_a"].rejected_count() == 2);
  REQUIRE(got["key_a"].last_rejected_time().seconds() == 1700000003);
  REQUIRE(got["key_r"].count() == 0);
  REQUIRE_FALSE(got["key_r"].has_last_used_time());  // never used: no time to report
  REQUIRE(got["key_r"].rejected_count() == 1);

  usage.Merge(req);  // a failed report puts everything back
  v1::ReportUsageRequest again = usage.Drain();
  uint64_t rejected = 0;
  for (const v1::KeyUsage& u : again.usage()) rejected += u.rejected_count();
  REQUIRE(rejected == 3);
}

TEST_CASE("a report that fails keeps its counts for the next one") {
  UsageReporter reporter(grpc::CreateChannel("127.0.0.1:" + std::to_string(testing::PickFreePort()),
                                             grpc::InsecureChannelCredentials()),
                         GenerateToken(), "pod-test", absl::Hours(1));
  reporter.counter().Record("key_a", absl::Now());
  REQUIRE_FALSE(reporter.Flush().ok());  // nobody listens there
  reporter.counter().Record("key_a", absl::Now());
  v1::ReportUsageRequest req = reporter.counter().Drain();
  REQUIRE(req.usage_size() == 1);
  REQUIRE(req.usage(0).count() == 2);
}

TEST_CASE("usage recorded from many threads while drained loses no count", "[concurrency]") {
  UsageCounter usage;
  constexpr int kThreads = 4, kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        usage.Record("key_" + std::to_string((t + i) % 7), absl::Now());
      }
    });
  }
  uint64_t total = 0;
  auto drain = [&] {
    const v1::ReportUsageRequest taken = usage.Drain();
    for (const v1::KeyUsage& u : taken.usage()) total += u.count();
  };
  for (int round = 0; round < 50; ++round) drain();
  for (std::thread& t : threads) t.join();
  drain();
  REQUIRE(total == kThreads * kPerThread);
}

}  // namespace
}  // namespace latchkey
