// /metrics on both daemons parses as Prometheus text format, and its
// counters move as validations and mutations happen.
#include <grpcpp/generic/generic_stub.h>
#include <httplib.h>

#include <catch2/catch.hpp>
#include <future>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/testing/cluster.h"

namespace latchkey {
namespace {

// Parses the text exposition format strictly enough to catch what Prometheus
// would refuse; returns sample name{labels} -> value.
std::map<std::string, double> ParseExposition(const std::string& text) {
  static const std::regex kSample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (-?[0-9.eE+-]+|\+Inf|-Inf|NaN)$)");
  static const std::regex kHelp(R"(^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
  static const std::regex kType(
      R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    INFO("line: " << line);
    std::smatch m;
    if (std::regex_match(line, m, kType)) {
      REQUIRE(types.emplace(m[1], m[2]).second);  // one TYPE per family
      continue;
    }
    if (line.rfind("# HELP", 0) == 0) {
      REQUIRE(std::regex_match(line, kHelp));
      continue;
    }
    REQUIRE(std::regex_match(line, m, kSample));
    std::string family = m[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (!types.count(family) && family.size() > strlen(suffix) &&
          family.compare(family.size() - strlen(suffix), strlen(suffix), suffix) == 0) {
        family = family.substr(0, family.size() - strlen(suffix));
      }
    }
    REQUIRE(types.count(family) == 1);  // every sample follows its TYPE line
    if (types[family] == "counter") REQUIRE(family.size() > 6);
    const std::string value = m[m.size() - 1];
    samples[line.substr(0, line.rfind(' '))] = value == "+Inf"   ? INFINITY
                                               : value == "-Inf" ? -INFINITY
                                                                 : std::stod(value);
  }
  return samples;
}

std::map<std::string, double> Scrape(int port) {
  httplib::Client client("127.0.0.1", port);
  auto res = client.Get("/metrics");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  REQUIRE(res->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0) == 0);
  return ParseExposition(res->body);
}

TEST_CASE("metrics parse as Prometheus text and move with validations and mutations") {
  AuthorityOptions options;
  options.metrics_listen = "127.0.0.1:0";
  testing::Cluster c(options);
  SidecarOptions sidecar_options;
  sidecar_options.metrics_listen = "127.0.0.1:0";
  SidecarServer& s = c.AddSidecar(sidecar_options);
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  REQUIRE(c.AllCaughtUp());

  auto before_a = Scrape(c.authority().metrics_port());
  auto before_s = Scrape(s.metrics_port());
  REQUIRE(before_s["latchkey_synced"] == 1);
  REQUIRE(before_s["latchkey_keys"] == 1);

  const v1::GenerateApiKeyResponse key = c.admin().GenerateApiKey(p.project().project_id());
  REQUIRE(c.admin().Revoke(key.key().key_id()).ok());
  REQUIRE(c.AllCaughtUp());
  for (int i = 0; i < 5; ++i)
    REQUIRE(testing::Verdict(s.address(), p.legacy_api_key()) == v1::VALID);
  REQUIRE(testing::Verdict(s.address(), key.api_key()) == v1::REVOKED);
  REQUIRE(testing::Verdict(s.address(), "nonsense") == v1::MALFORMED);
  testing::Admin nobody(c.authority().address(), "");
  v1::ListProjectsResponse unused;
  REQUIRE_FALSE(
      nobody.Call(&v1::KeyAdmin::Stub::ListProjects, v1::ListProjectsRequest{}, &unused).ok());

  auto after_a = Scrape(c.authority().metrics_port());
  auto after_s = Scrape(s.metrics_port());
  auto delta = [](auto& after, auto& before, const std::string& name) {
    return after[name] - before[name];
  };
  REQUIRE(delta(after_s, before_s, R"(latchkey_validations_total{verdict="VALID"})") == 5);
  REQUIRE(delta(after_s, before_s, R"(latchkey_validations_total{verdict="REVOKED"})") == 1);
  REQUIRE(delta(after_s, before_s, R"(latchkey_validations_total{verdict="MALFORMED"})") == 1);
  REQUIRE(delta(after_s, before_s, "latchkey_validation_check_seconds_count") == 7);
  REQUIRE(after_s["latchkey_keys"] == 2);
  REQUIRE(after_s["latchkey_applied_revision"] == after_a["latchkey_head_revision"]);
  REQUIRE(after_s["latchkey_snapshot_loads_total"] == 1);
  REQUIRE(after_s[R"(latchkey_validation_check_seconds_bucket{le="+Inf"})"] ==
          after_s["latchkey_validation_check_seconds_count"]);

  REQUIRE(delta(after_a, before_a, R"(latchkey_mutations_total{action="key.created"})") == 1);
  REQUIRE(delta(after_a, before_a, R"(latchkey_mutations_total{action="key.revoked"})") == 1);
  REQUIRE(delta(after_a, before_a, "latchkey_head_revision") == 2);
  REQUIRE(
      delta(
          after_a, before_a,
          R"(latchkey_rpcs_total{service="latchkey.v1.KeyAdmin",method="RevokeApiKey",code="OK"})") ==
      1);
  REQUIRE(
      delta(
          after_a, before_a,
          R"(latchkey_rpcs_total{service="latchkey.v1.KeyAdmin",method="ListProjects",code="UNAUTHENTICATED"})") ==
      1);
  REQUIRE(delta(after_a, before_a, "latchkey_auth_failures_total") == 1);
  REQUIRE(after_a["latchkey_watchers"] == 1);
  // One authority alone never refuses its own mutations.
  REQUIRE(after_a.count("latchkey_store_conflicts_total") == 1);
  REQUIRE(after_a["latchkey_store_conflicts_total"] == 0);
  REQUIRE(after_a.count("latchkey_mutation_retries_total") == 1);
  REQUIRE(after_a["latchkey_mutation_retries_total"] == 0);
}

TEST_CASE("Sync and Watch calls are counted once each, by their handlers") {
  AuthorityOptions options;
  options.metrics_listen = "127.0.0.1:0";
  testing::Cluster c(options);
  const std::string token = c.admin().CreatePrincipal("follower", v1::ROLE_SIDECAR);
  auto stub = v1::KeySync::NewStub(testing::Channel(c.authority().address()));
  auto sync = [&](const std::string& bearer, const v1::SyncRequest& first) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + bearer);
    auto stream = stub->Sync(&ctx);
    stream->Write(first);
    stream->WritesDone();
    v1::WatchResponse ignored;
    while (stream->Read(&ignored)) {
    }
    return stream->Finish().error_code();
  };
  v1::SyncRequest watch;
  watch.mutable_watch();
  REQUIRE(sync("lkt_wrong", watch) == grpc::StatusCode::UNAUTHENTICATED);  // refused at once
  v1::SyncRequest ack_first;
  ack_first.mutable_acknowledgement();
  REQUIRE(sync(token, ack_first) == grpc::StatusCode::INVALID_ARGUMENT);  // ended by the reactor
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer lkt_wrong");
    auto reader = stub->Watch(&ctx, v1::WatchRequest());
    v1::WatchResponse ignored;
    while (reader->Read(&ignored)) {
    }
    REQUIRE(reader->Finish().error_code() == grpc::StatusCode::UNAUTHENTICATED);
  }

  std::map<std::string, double> after = Scrape(c.authority().metrics_port());
  const std::string sync_labels = R"(service="latchkey.v1.KeySync",method="Sync")";
  CHECK(after["latchkey_rpcs_total{" + sync_labels + R"(,code="UNAUTHENTICATED"})"] == 1);
  CHECK(after["latchkey_rpcs_total{" + sync_labels + R"(,code="INVALID_ARGUMENT"})"] == 1);
  CHECK(after["latchkey_rpc_duration_seconds_count{" + sync_labels + "}"] == 2);
  CHECK(
      after
          [R"(latchkey_rpcs_total{service="latchkey.v1.KeySync",method="Watch",code="UNAUTHENTICATED"})"] ==
      1);
}

// Follows the authority from revision 0 until the snapshot's end marker, then
// leaves, as a pod of a rolling restart would be replaced.
void SyncOnce(const std::string& address, const std::string& token) {
  auto stub = v1::KeySync::NewStub(testing::Channel(address));
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + token);
  auto stream = stub->Sync(&ctx);
  v1::SyncRequest first;
  first.mutable_watch();
  REQUIRE(stream->Write(first));
  v1::WatchResponse message;
  bool ended = false;
  while (!ended && stream->Read(&message)) ended = message.has_snapshot_end();
  REQUIRE(ended);
  ctx.TryCancel();
  while (stream->Read(&message)) {
  }
  stream->Finish();
}

TEST_CASE("sidecars that start one after another are sent the kept snapshot, read once") {
  AuthorityOptions options;
  options.metrics_listen = "127.0.0.1:0";
  size_t expected_reads = 1;
  SECTION("kept: the default") {}
  SECTION("none kept: each snapshot is read") {
    options.snapshot_cache_mb = 0;
    expected_reads = 3;
  }
  testing::Cluster c(options);
  const std::string token = c.admin().CreatePrincipal("follower", v1::ROLE_SIDECAR);
  const std::string project = c.admin().CreateProject("rolling").project().project_id();
  for (int i = 0; i < 5; i++) c.admin().GenerateApiKey(project);
  for (int pod = 0; pod < 3; pod++) SyncOnce(c.authority().address(), token);

  std::map<std::string, double> after = Scrape(c.authority().metrics_port());
  CHECK(after["latchkey_snapshots_read_total"] == expected_reads);
  if (expected_reads == 1) {
    CHECK(after["latchkey_snapshot_kept_bytes"] > 0);
  } else {
    CHECK(after["latchkey_snapshot_kept_bytes"] == 0);
  }
}

TEST_CASE("what a burst of streams freed is given back once it is over, and counted") {
  AuthorityOptions options;
  options.metrics_listen = "127.0.0.1:0";
  options.memory_release_interval = absl::Milliseconds(20);
  bool releases = true;
  SECTION("releasing") {}
  SECTION("--memory-release-interval=0: never") {
    options.memory_release_interval = absl::ZeroDuration();
    releases = false;
  }
  testing::Cluster c(options);
  const std::string token = c.admin().CreatePrincipal("follower", v1::ROLE_SIDECAR);
  for (int pod = 0; pod < 3; pod++) SyncOnce(c.authority().address(), token);
  auto released = [&] {
    return Scrape(c.authority().metrics_port())["latchkey_memory_releases_total"] > 0;
  };
  if (releases) {
    REQUIRE(testing::Eventually(released));
    std::map<std::string, double> after = Scrape(c.authority().metrics_port());
    CHECK(after["latchkey_memory_release_seconds_total"] > 0);
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK_FALSE(released());
  }
}

TEST_CASE("calls to methods that do not exist share one metrics label, so /metrics stays bounded") {
  AuthorityOptions options;
  options.metrics_listen = "127.0.0.1:0";
  testing::Cluster c(options);
  grpc::GenericStub stub(testing::Channel(c.authority().address()));
  for (int i = 0; i < 40; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Slice body("", 0);
    grpc::ByteBuffer request(&body, 1), response;
    std::promise<grpc::Status> done;
    // No token and no such method: a stranger can send any path.
    stub.UnaryCall(&ctx, "/evil.Service" + std::to_string(i) + "/Method" + std::to_string(i), {},
                   &request, &response, [&](grpc::Status s) { done.set_value(s); });
    REQUIRE(done.get_future().get().error_code() == grpc::StatusCode::UNIMPLEMENTED);
  }
  const std::map<std::string, double> after = Scrape(c.authority().metrics_port());
  double unknown = 0;
  for (const auto& [sample, value] : after) {
    INFO(sample);
    REQUIRE(sample.find("evil") == std::string::npos);
    if (sample.rfind("latchkey_rpcs_total{", 0) == 0 &&
        sample.find("service=\"unknown\"") != std::string::npos) {
      unknown += value;
    }
  }
  REQUIRE(unknown == 40);
  // Real methods keep their names.
  bool named = false;
  for (const auto& [sample, value] : after) {
    named |= sample.find("method=\"CreatePrincipal\"") != std::string::npos;
  }
  REQUIRE(named);
}

TEST_CASE("last-used times reach the authority within the usage interval, counts summed") {
  testing::Cluster c;
  SidecarOptions fast;
  fast.usage_interval = absl::Milliseconds(200);
  SidecarServer& s1 = c.AddSidecar(fast);
  SidecarServer& s2 = c.AddSidecar(fast);
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  REQUIRE(c.AllCaughtUp());
  KeyStore& store = c.authority().store();
  const StoreStats before = store.stats();
  for (int i = 0; i < 50; ++i)
    REQUIRE(testing::Verdict(s1.address(), p.legacy_api_key()) == v1::VALID);
  for (int i = 0; i < 30; ++i)
    REQUIRE(testing::Verdict(s2.address(), p.legacy_api_key()) == v1::VALID);
  v1::GetKeyRequest req;
  req.set_key_id(p.legacy_key().key_id());
  v1::Key key;
  REQUIRE(testing::Eventually(
      [&] {
        REQUIRE(c.admin().Call(&v1::KeyAdmin::Stub::GetKey, req, &key).ok());
        return key.use_count() == 80;
      },
      std::chrono::seconds(5)));
  REQUIRE(key.last_used_time().seconds() > 0);
  const StoreStats after = store.stats();
  INFO("advisory writes " << after.advisory_writes - before.advisory_writes);
  REQUIRE(after.commits == before.commits);                      // no mutation per validation
  REQUIRE(after.advisory_writes - before.advisory_writes <= 2);  // one per flush, not per use
}

}  // namespace
}  // namespace latchkey
