// The Follower (sidecar/follower.h) on its own, following a real authority in
// process: what it refuses at start, the verdict under each staleness policy,
// the usage it counts, its state file and its metrics. The sidecar's gRPC
// face is tested in sync_test.cc and validator_service_test.cc.
#include "sidecar/follower.h"

#include <catch2/catch.hpp>
#include <filesystem>

#include "absl/time/clock.h"
#include "common/files.h"
#include "common/key_format.h"
#include "sidecar/state_file.h"
#include "tests/testing/cluster.h"

namespace latchkey {
namespace {

using testing::Cluster;
using testing::Eventually;

FollowerOptions OptionsFor(Cluster& c) {
  FollowerOptions o;
  o.authority = c.authority().address();
  o.token = c.sidecar_token();
  o.sidecar_id = "follower-test";
  return o;
}

std::unique_ptr<Follower> StartFollower(FollowerOptions options) {
  absl::StatusOr<std::unique_ptr<Follower>> f = Follower::Start(std::move(options));
  INFO(f.status());
  REQUIRE(f.ok());
  return *std::move(f);
}

bool CaughtUp(Cluster& c, const Follower& f) {
  return Eventually(
      [&] { return f.sync_state().applied == c.authority().store().head_revision() && f.fresh(); });
}

// The value a metric has in a rendered registry, or -1 when it is absent.
double MetricValue(const Registry& registry, const std::string& name) {
  const std::string text = registry.Render();
  const std::string line_start = "\n" + name + " ";
  const size_t at = text.find(line_start);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + line_start.size()));
}

TEST_CASE("a follower refuses to start without a token, or with TLS or addresses it cannot use") {
  FollowerOptions no_token;
  CHECK(Follower::Start(no_token).status().code() == absl::StatusCode::kInvalidArgument);

  FollowerOptions half_tls;
  half_tls.token = GenerateToken();
  half_tls.authority_tls.cert = "/nonexistent/cert.pem";  // a certificate without its key
  CHECK(Follower::Start(half_tls).status().code() == absl::StatusCode::kInvalidArgument);

  FollowerOptions missing_ca;
  missing_ca.token = GenerateToken();
  missing_ca.authority_tls.ca = "/nonexistent/ca.pem";
  CHECK_FALSE(Follower::Start(missing_ca).ok());

  FollowerOptions mixed;
  mixed.token = GenerateToken();
  mixed.authority = "127.0.0.1:1,[::1]:2";
  absl::Status s = Follower::Start(mixed).status();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message().find("all be IPv4 or all IPv6") != std::string_view::npos);
}

TEST_CASE("a follower names itself after its host and process when not told") {
  Cluster c;
  FollowerOptions o = OptionsFor(c);
  o.sidecar_id.clear();
  std::unique_ptr<Follower> f = StartFollower(o);
  CHECK(f->sidecar_id().find("-" + std::to_string(getpid())) != std::string::npos);
  CHECK(f->sidecar_id().size() > std::to_string(getpid()).size() + 1);
}

TEST_CASE("a follower answers from the authority's keys, and counts each use") {
  Cluster c;
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  const v1::GenerateApiKeyResponse api = c.admin().GenerateApiKey(p.project().project_id());
  REQUIRE(c.admin().Revoke(api.key().key_id()).ok());
  FollowerOptions o = OptionsFor(c);
  o.usage_interval = absl::Hours(1);  // no report drains the counts under the test
  std::unique_ptr<Follower> f = StartFollower(o);
  REQUIRE(CaughtUp(c, *f));

  CHECK(f->Validate(p.legacy_api_key()).verdict == v1::VALID);
  CHECK(f->Validate(p.legacy_api_key()).verdict == v1::VALID);
  CHECK(f->Validate(api.api_key()).verdict == v1::REVOKED);
  CHECK(f->Validate(GenerateKey(v1::API_KEY)).verdict == v1::UNKNOWN);
  CHECK(f->Validate("lkp_short").verdict == v1::MALFORMED);

  // Two uses of the legacy key, one rejection of the revoked one; nothing
  // for keys the follower does not know.
  const v1::ReportUsageRequest usage = f->usage().Drain();
  std::map<std::string, std::pair<uint64_t, uint64_t>> counts;  // key id: (uses, rejected)
  for (const v1::KeyUsage& u : usage.usage()) counts[u.key_id()] = {u.count(), u.rejected_count()};
  CHECK(counts.size() == 2);
  CHECK(counts[p.legacy_key().key_id()] == std::make_pair(uint64_t{2}, uint64_t{0}));
  CHECK(counts[api.key().key_id()] == std::make_pair(uint64_t{0}, uint64_t{1}));
}

TEST_CASE("a stale follower under the reject policy answers UNKNOWN, but MALFORMED stays") {
  Cluster c;
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  FollowerOptions o = OptionsFor(c);
  o.max_staleness = absl::Milliseconds(300);
  o.stale_policy = StalePolicy::kReject;
  std::unique_ptr<Follower> f = StartFollower(o);
  REQUIRE(CaughtUp(c, *f));
  CHECK_FALSE(f->rejecting());
  CHECK(f->Validate(p.legacy_api_key()).verdict == v1::VALID);

  c.StopAuthority();
  REQUIRE(Eventually([&] { return f->rejecting(); }));
  CHECK_FALSE(f->fresh());
  CHECK(f->Validate(p.legacy_api_key()).verdict == v1::UNKNOWN);
  CHECK(f->Validate("lkp_short").verdict == v1::MALFORMED);
  // The key set itself still knows the key: only the answer is withheld.
  CHECK(Check(f->keys(), p.legacy_api_key(), /*rejecting=*/false).verdict == v1::VALID);
}

TEST_CASE("a stale follower under the serve policy keeps answering from what it has") {
  Cluster c;
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  FollowerOptions o = OptionsFor(c);
  o.max_staleness = absl::Milliseconds(300);
  std::unique_ptr<Follower> f = StartFollower(o);
  REQUIRE(CaughtUp(c, *f));
  c.StopAuthority();
  REQUIRE(Eventually([&] { return !f->fresh(); }));
  CHECK_FALSE(f->rejecting());
  CHECK(f->Validate(p.legacy_api_key()).verdict == v1::VALID);
}

TEST_CASE("a follower's Stop is idempotent and saves its latest state for the next one") {
  Cluster c;
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  FollowerOptions o = OptionsFor(c);
  o.state_file = c.dir() / "follower.state";
  o.state_interval = absl::Hours(1);  // only Stop saves
  std::unique_ptr<Follower> f = StartFollower(o);
  REQUIRE(CaughtUp(c, *f));
  const uint64_t applied = f->sync_state().applied;
  REQUIRE_FALSE(std::filesystem::exists(o.state_file));
  f->Stop();
  f->Stop();

  KeySet::Builder builder;
  absl::StatusOr<SavedState> saved = LoadState(o.state_file, builder);
  REQUIRE(saved.ok());
  CHECK(saved->revision == applied);
  CHECK(builder.size() == 1);

  // The next follower, with the authority gone, starts from the file.
  f.reset();
  c.StopAuthority();
  std::unique_ptr<Follower> next = StartFollower(o);
  CHECK(next->sync_state().restored);
  CHECK(next->sync_state().applied == applied);
  CHECK(next->Validate(p.legacy_api_key()).verdict == v1::VALID);
}

TEST_CASE("a follower saves its state file when the set changes, and only then") {
  Cluster c;
  const std::string project = c.admin().CreateProject("shop").project().project_id();
  FollowerOptions o = OptionsFor(c);
  o.state_file = c.dir() / "follower.state";
  o.state_interval = absl::Milliseconds(20);
  std::unique_ptr<Follower> f = StartFollower(o);
  Registry metrics;
  f->AddMetrics(metrics);
  REQUIRE(CaughtUp(c, *f));
  REQUIRE(Eventually([&] { return MetricValue(metrics, "latchkey_state_file_saves_total") >= 1; }));

  // Quiet: many save intervals pass, the file is not written again. (The
  // authority's progress confirmations change what is saved, so stop it.)
  c.StopAuthority();
  absl::SleepFor(absl::Milliseconds(200));
  const double quiet = MetricValue(metrics, "latchkey_state_file_saves_total");
  absl::SleepFor(absl::Milliseconds(300));
  CHECK(MetricValue(metrics, "latchkey_state_file_saves_total") == quiet);

  // A change is saved within an interval or so.
  c.StartAuthority();
  c.admin().GenerateApiKey(project);
  REQUIRE(CaughtUp(c, *f));
  const uint64_t applied = f->sync_state().applied;
  REQUIRE(Eventually([&] {
    KeySet::Builder b;
    absl::StatusOr<SavedState> saved = LoadState(o.state_file, b);
    return saved.ok() && saved->revision == applied && b.size() == 2;
  }));
  // The file is written before the save is counted.
  CHECK(
      Eventually([&] { return MetricValue(metrics, "latchkey_state_file_saves_total") > quiet; }));
  CHECK(MetricValue(metrics, "latchkey_state_file_save_failures_total") == 0);
}

TEST_CASE("a follower that cannot write its state file counts the failure and goes on") {
  Cluster c;
  FollowerOptions o = OptionsFor(c);
  o.state_file = c.dir() / "no-such-dir/follower.state";
  o.state_interval = absl::Milliseconds(20);
  std::unique_ptr<Follower> f = StartFollower(o);
  Registry metrics;
  f->AddMetrics(metrics);
  REQUIRE(CaughtUp(c, *f));
  REQUIRE(Eventually(
      [&] { return MetricValue(metrics, "latchkey_state_file_save_failures_total") >= 1; }));
  CHECK(MetricValue(metrics, "latchkey_state_file_saves_total") == 0);
  CHECK(f->fresh());
}

TEST_CASE("a follower's metrics tell its keys, revision and sync") {
  Cluster c;
  const std::string project = c.admin().CreateProject("shop").project().project_id();
  c.admin().GenerateSecretKey(project);
  std::unique_ptr<Follower> f = StartFollower(OptionsFor(c));
  Registry metrics;
  f->AddMetrics(metrics);
  REQUIRE(CaughtUp(c, *f));
  CHECK(MetricValue(metrics, "latchkey_keys") == 2);
  CHECK(MetricValue(metrics, "latchkey_synced") == 1);
  CHECK(MetricValue(metrics, "latchkey_applied_revision") ==
        static_cast<double>(c.authority().store().head_revision()));
  CHECK(MetricValue(metrics, "latchkey_snapshot_loads_total") == 1);
  CHECK(MetricValue(metrics, "latchkey_staleness_seconds") < 5);

  c.admin().GenerateApiKey(project);
  f->Reconnect();
  REQUIRE(CaughtUp(c, *f));
  CHECK(MetricValue(metrics, "latchkey_keys") == 3);
  CHECK(Eventually([&] { return MetricValue(metrics, "latchkey_reconnects_total") >= 1; }));
  CHECK(MetricValue(metrics, "latchkey_watch_contract_violations_total") == 0);
}

}  // namespace
}  // namespace latchkey
