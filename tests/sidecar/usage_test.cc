#include "sidecar/usage.h"

#include <catch2/catch.hpp>
#include <map>
#include <thread>

#include "absl/time/clock.h"
#include "common/key_format.h"
#include "common/mutex.h"
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

Validation Verdict(v1::Verdict verdict, const std::string& key_id) {
  Validation v;
  v.verdict = verdict;
  std::copy(key_id.begin() + 4, key_id.end(), v.packed_key_id.begin());  // past "key_"
  return v;
}

std::map<std::string, std::string> Report(UsageCounter& usage) {
  std::map<std::string, std::string> out;
  const v1::ReportUsageRequest report = usage.Drain();
  for (const v1::KeyUsage& u : report.usage()) out[u.key_id()] = u.ShortDebugString();
  return out;
}

TEST_CASE("a tally adds up to what counting verdict by verdict adds") {
  const std::vector<std::string> ids = {GenerateKeyId(), GenerateKeyId(), GenerateKeyId()};
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  UsageCounter one_by_one, tallied;
  UsageCounter::Tally tally;
  int n = 0;
  for (v1::Verdict verdict : {v1::VALID, v1::REVOKED, v1::EXPIRED, v1::PROJECT_DISABLED,
                              v1::UNKNOWN, v1::MALFORMED, v1::VALID}) {
    for (const std::string& id : ids) {
      const Validation v = Verdict(verdict, id);
      const absl::Time when = t + absl::Seconds(n++ % 5);
      one_by_one.Count(v, when);
      tally.Count(v, when);
    }
  }
  tallied.Add(tally);
  const std::map<std::string, std::string> want = Report(one_by_one);
  REQUIRE(want.size() == 3);
  REQUIRE(Report(tallied) == want);
  // Each key: two uses and three rejections; unknown and malformed count nothing.
  UsageCounter again;
  again.Add(tally);
  const v1::ReportUsageRequest report = again.Drain();
  REQUIRE(report.usage_size() == 3);
  for (const v1::KeyUsage& got : report.usage()) {
    REQUIRE(got.count() == 2);
    REQUIRE(got.rejected_count() == 3);
  }
}

// A KeySync that takes usage reports no larger than 64 KiB, like an
// authority with a small --max-receive limit.
class SmallReportsAuthority final : public v1::KeySync::Service {
 public:
  grpc::Status ReportUsage(grpc::ServerContext*, const v1::ReportUsageRequest* req,
                           v1::ReportUsageResponse*) override {
    MutexLock lock(&mu_);
    ++reports_;
    for (const v1::KeyUsage& u : req->usage()) counts_[u.key_id()] += u.count();
    return grpc::Status::OK;
  }
  int reports() {
    MutexLock lock(&mu_);
    return reports_;
  }
  std::map<std::string, uint64_t> counts() {
    MutexLock lock(&mu_);
    return counts_;
  }

 private:
  Mutex mu_;
  int reports_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, uint64_t> counts_ ABSL_GUARDED_BY(mu_);
};

TEST_CASE("a report too large for the authority is split, not retried whole forever") {
  SmallReportsAuthority authority;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(64 << 10);
  builder.RegisterService(&authority);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  REQUIRE(server != nullptr);
  UsageReporter reporter(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()),
      GenerateToken(), "pod-test", absl::Hours(1));
  constexpr int kKeys = 20000;  // about 1 MiB of usage
  for (int i = 0; i < kKeys; ++i) {
    reporter.counter().Record(GenerateKeyId(), absl::Now());
    if (i % 2 == 0) reporter.counter().Record("key_hot", absl::Now());
  }
  const grpc::Status s = reporter.Flush();
  INFO(s.error_message());
  REQUIRE(s.ok());
  std::map<std::string, uint64_t> counts = authority.counts();
  CHECK(counts.size() == kKeys + 1);
  CHECK(counts["key_hot"] == kKeys / 2);
  CHECK(authority.reports() >= 16);  // >= 1 MiB in parts under 64 KiB
  CHECK(reporter.counter().Drain().usage_size() == 0);
  server->Shutdown();
}

TEST_CASE("usage splits into parts under the size limit, every key once, in order") {
  v1::ReportUsageRequest all;
  all.set_sidecar_id("pod-test");
  for (int i = 0; i < 1000; ++i) {
    v1::KeyUsage* u = all.add_usage();
    u->set_key_id("key_" + std::to_string(i));
    u->set_count(i + 1);
  }
  const std::vector<v1::ReportUsageRequest> parts = SplitUsage(all, 1000);
  REQUIRE(parts.size() > 10);
  int next = 0;
  for (const v1::ReportUsageRequest& part : parts) {
    CHECK(part.ByteSizeLong() <= 1000);
    CHECK(part.sidecar_id() == "pod-test");
    for (const v1::KeyUsage& u : part.usage()) CHECK(u.key_id() == "key_" + std::to_string(next++));
  }
  CHECK(next == 1000);
  // A limit smaller than one key still sends each key, one per part.
  CHECK(SplitUsage(all, 1).size() == 1000);
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
