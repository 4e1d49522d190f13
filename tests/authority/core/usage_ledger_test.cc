// The usage ledger: reports summed in memory, written as this process's rows.
#include "authority/core/usage_ledger.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "common/time_util.h"
#include "tests/testing/authority_fixture.h"

namespace latchkey {
namespace {

using testing::AuthorityFixture;

const Caller kSidecar{"prn_s", "sidecar", v1::ROLE_SIDECAR};

// One sidecar's report of `count` uses of each of `key_ids`, the last now.
v1::ReportUsageRequest Uses(const std::vector<std::string>& key_ids, uint64_t count,
                            const std::string& sidecar_id = "pod-1") {
  v1::ReportUsageRequest report;
  report.set_sidecar_id(sidecar_id);
  for (const std::string& id : key_ids) {
    v1::KeyUsage* u = report.add_usage();
    u->set_key_id(id);
    u->set_count(count);
    *u->mutable_last_used_time() = ToProto(absl::Now());
  }
  return report;
}

// A new API key's id, in a new project.
std::string NewKeyId(AuthorityFixture& f) {
  return f.GenerateApiKey(f.CreateProject().project().project_id())->key().key_id();
}

TEST_CASE("a full list of sidecars gives way to one that rejected more") {
  PendingUsage pending;
  for (int i = 0; i < 64; ++i) {
    PendingUsage one;
    one.rejected_count = 10 + i;
    one.rejected_by["pod-" + std::to_string(i)] = {10 + static_cast<uint64_t>(i), i};
    AddPending(pending, one);
  }
  REQUIRE(pending.rejected_by.size() == 64);
  PendingUsage small, big;
  small.rejected_count = 5;
  small.rejected_by["pod-small"] = {5, 100};
  big.rejected_count = 500;
  big.rejected_by["pod-big"] = {500, 101};
  AddPending(pending, small);
  AddPending(pending, big);
  CHECK(pending.rejected_by.size() == 64);
  CHECK_FALSE(pending.rejected_by.contains("pod-small"));  // fewer than every one listed
  CHECK(pending.rejected_by.contains("pod-big"));
  CHECK_FALSE(pending.rejected_by.contains("pod-0"));             // the fewest made room
  CHECK(pending.rejected_count == (10 + 73) * 64 / 2 + 5 + 500);  // every rejection counts
}

TEST_CASE("rows of two writers add up, and a revoked key's sidecars merge by id") {
  internal::KeyUsageRecord a, b;
  a.set_count(3);
  a.set_last_used_micros(100);
  a.set_rejected_since_revocation(4);
  auto* pod = a.add_revoked_rejections();
  pod->set_sidecar_id("pod-1");
  pod->set_count(4);
  pod->set_last_micros(50);
  b.set_count(5);
  b.set_last_used_micros(90);
  b.set_rejected_since_revocation(6);
  pod = b.add_revoked_rejections();
  pod->set_sidecar_id("pod-1");
  pod->set_count(1);
  pod->set_last_micros(70);
  pod = b.add_revoked_rejections();
  pod->set_sidecar_id("pod-2");
  pod->set_count(5);
  pod->set_last_micros(60);
  MergeRecords(a, b);
  CHECK(a.count() == 8);
  CHECK(a.last_used_micros() == 100);
  CHECK(a.rejected_since_revocation() == 10);
  REQUIRE(a.revoked_rejections_size() == 2);
  CHECK(a.revoked_rejections(0).sidecar_id() == "pod-1");  // most first: 5 and 5, pod-1 was first
  CHECK(a.revoked_rejections(0).count() == 5);
  CHECK(a.revoked_rejections(0).last_micros() == 70);
  CHECK(a.revoked_rejections(1).sidecar_id() == "pod-2");
}

TEST_CASE("usage reported, flushed and read from many threads at once counts every use once",
          "[concurrency]") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  std::vector<std::string> ids;
  for (int k = 0; k < 3; ++k) ids.push_back(f.GenerateApiKey(project)->key().key_id());
  constexpr uint64_t kReporters = 4, kReports = 300;
  // Catch2's assertions are for the test's own thread: the others count.
  std::atomic<int> failed{0}, overcounted{0};
  std::atomic<bool> reporting{true};
  std::vector<std::thread> threads;
  for (uint64_t r = 0; r < kReporters; ++r) {
    threads.emplace_back([&, r] {
      const v1::ReportUsageRequest report = Uses(ids, 1, "pod-" + std::to_string(r));
      for (uint64_t i = 0; i < kReports; ++i) {
        if (!f.authority().RecordUsage(kSidecar, report).ok()) ++failed;
      }
    });
  }
  std::thread flusher([&] {
    while (reporting) {
      if (!f.authority().FlushUsage().ok()) ++failed;
    }
  });
  std::thread reader([&] {
    v1::GetKeyRequest get;
    get.set_key_id(ids[0]);
    while (reporting) {
      absl::StatusOr<v1::Key> key = f.authority().GetKey(f.member(), get);
      if (!key.ok()) ++failed;
      if (key.ok() && key->use_count() > kReporters * kReports) ++overcounted;
    }
  });
  for (std::thread& t : threads) t.join();
  reporting = false;
  flusher.join();
  reader.join();
  REQUIRE(failed == 0);
  REQUIRE(overcounted == 0);
  for (const std::string& id : ids) CHECK(f.GetKey(id).use_count() == kReporters * kReports);
  REQUIRE(f.authority().FlushUsage().ok());
  for (const std::string& id : ids) CHECK(f.GetKey(id).use_count() == kReporters * kReports);
}

TEST_CASE("a read while a flush's rows land counts them once", "[concurrency]") {
  AuthorityFixture f;
  const std::string id = NewKeyId(f);
  const v1::ReportUsageRequest report = Uses({id}, 7);
  // The first flush writes a row this process has not written before; the
  // second adds to the row it wrote.
  for (uint64_t flush = 1; flush <= 2; ++flush) {
    REQUIRE(f.authority().RecordUsage(kSidecar, report).ok());
    std::future<absl::StatusOr<v1::Key>> read;
    f.store().OnNextUsagePut([&] {
      // The rows are in the store; the flush that wrote them has not returned.
      read = std::async(std::launch::async, [&] {
        v1::GetKeyRequest get;
        get.set_key_id(id);
        return f.authority().GetKey(f.member(), get);
      });
      // A read that can finish now does; one that waits for the rows to land
      // is let go after this.
      read.wait_for(std::chrono::milliseconds(500));
    });
    REQUIRE(f.authority().FlushUsage().ok());
    REQUIRE(read.valid());
    absl::StatusOr<v1::Key> key = read.get();
    REQUIRE(key.ok());
    CHECK(key->use_count() == 7 * flush);
  }
}

TEST_CASE("a flush whose rows landed but whose answer was lost counts them once, then and after") {
  AuthorityFixture f;
  const std::string id = NewKeyId(f);
  const v1::ReportUsageRequest report = Uses({id}, 7);
  REQUIRE(f.authority().RecordUsage(kSidecar, report).ok());
  f.store().FailNextUsagePutAfterLanding();
  REQUIRE(absl::IsUnavailable(f.authority().FlushUsage()));
  CHECK(f.GetKey(id).use_count() == 7);  // in the store, and waiting in memory to be written
  REQUIRE(f.authority().FlushUsage().ok());
  CHECK(f.GetKey(id).use_count() == 7);
}

}  // namespace
}  // namespace latchkey
