// Sidecars following a real authority over gRPC, in process.
#include <catch2/catch.hpp>
#include <random>

#include "absl/time/clock.h"
#include "authority/store/rocksdb/rocksdb_store.h"
#include "common/files.h"
#include "common/key_format.h"
#include "common/time_util.h"
#include "sidecar/state_file.h"
#include "tests/testing/cluster.h"

namespace latchkey {
namespace {

using testing::Cluster;
using testing::Eventually;
using testing::Verdict;

bool SeesEverywhere(Cluster& c, const std::string& key, v1::Verdict want) {
  return Eventually([&] {
    for (auto& s : c.sidecars()) {
      if (Verdict(s->address(), key) != want) return false;
    }
    return true;
  });
}

TEST_CASE("a sidecar is NOT_SERVING until its first sync, then SERVING") {
  testing::TempDir dir;
  SidecarOptions options;
  options.listen.addresses = {"127.0.0.1:0"};
  options.authority = "127.0.0.1:" + std::to_string(testing::PickFreePort());  // nobody there
  options.token = GenerateToken();
  auto sidecar = *SidecarServer::Start(options);
  auto channel = testing::Channel(sidecar->address());
  REQUIRE(testing::Health(channel) == "NOT_SERVING");

  Cluster c;
  SidecarServer& s = c.AddSidecar();
  REQUIRE(Eventually([&] { return testing::Health(testing::Channel(s.address())) == "SERVING"; }));
}

TEST_CASE("verdicts follow revocation, deletion, project access and rotation") {
  Cluster c;
  for (int i = 0; i < 3; ++i) c.AddSidecar();
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  const std::string project = p.project().project_id();
  const v1::GenerateApiKeyResponse api = c.admin().GenerateApiKey(project);
  const v1::GenerateSecretKeyResponse secret = c.admin().GenerateSecretKey(project);
  REQUIRE(SeesEverywhere(c, api.api_key(), v1::VALID));
  REQUIRE(SeesEverywhere(c, secret.secret_key(), v1::VALID));
  REQUIRE(SeesEverywhere(c, p.legacy_api_key(), v1::VALID));

  REQUIRE(c.admin().Revoke(api.key().key_id()).ok());
  REQUIRE(SeesEverywhere(c, api.api_key(), v1::REVOKED));

  v1::DeleteSecretKeyRequest del;
  del.set_key_id(secret.key().key_id());
  del.set_confirm("DELETE");
  v1::DeleteSecretKeyResponse dresp;
  REQUIRE(c.admin().Call(&v1::KeyAdmin::Stub::DeleteSecretKey, del, &dresp).ok());
  REQUIRE(SeesEverywhere(c, secret.secret_key(), v1::UNKNOWN));

  v1::SetApiAccessRequest access;
  access.set_project_id(project);
  access.set_enabled(false);
  v1::Project proj;
  REQUIRE(c.admin().Call(&v1::KeyAdmin::Stub::SetApiAccess, access, &proj).ok());
  REQUIRE(SeesEverywhere(c, p.legacy_api_key(), v1::PROJECT_DISABLED));
  access.set_enabled(true);
  REQUIRE(c.admin().Call(&v1::KeyAdmin::Stub::SetApiAccess, access, &proj).ok());
  REQUIRE(SeesEverywhere(c, p.legacy_api_key(), v1::VALID));

  v1::RotateApiKeyRequest rot;
  rot.set_key_id(p.legacy_key().key_id());
  v1::RotateApiKeyResponse rotated;
  REQUIRE(c.admin().Call(&v1::KeyAdmin::Stub::RotateApiKey, rot, &rotated).ok());
  REQUIRE(SeesEverywhere(c, rotated.api_key(), v1::VALID));
  REQUIRE(SeesEverywhere(c, p.legacy_api_key(), v1::REVOKED));
}

TEST_CASE("a rotated value stays VALID through its grace period, then EXPIRED") {
  Cluster c;
  SidecarServer& s = c.AddSidecar();
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  v1::RotateApiKeyRequest rot;
  rot.set_key_id(p.legacy_key().key_id());
  *rot.mutable_grace_period() = ToProto(absl::Milliseconds(800));
  v1::RotateApiKeyResponse rotated;
  REQUIRE(c.admin().Call(&v1::KeyAdmin::Stub::RotateApiKey, rot, &rotated).ok());
  REQUIRE(c.AllCaughtUp());
  const absl::Time until = FromProto(rotated.previous_valid_until());
  if (absl::Now() < until - absl::Milliseconds(200)) {
    REQUIRE(Verdict(s.address(), p.legacy_api_key()) == v1::VALID);
  }
  REQUIRE(Verdict(s.address(), rotated.api_key()) == v1::VALID);
  REQUIRE(Eventually([&] { return Verdict(s.address(), p.legacy_api_key()) == v1::EXPIRED; }));
  REQUIRE(absl::Now() >= until);
}

TEST_CASE("malformed strings are MALFORMED, and a batch answers in order") {
  Cluster c;
  SidecarServer& s = c.AddSidecar();
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  REQUIRE(c.AllCaughtUp());
  std::string bad_checksum = p.legacy_api_key();
  bad_checksum.back() = bad_checksum.back() == 'A' ? 'B' : 'A';
  auto stub = v1::Validator::NewStub(testing::Channel(s.address()));
  v1::ValidateBatchRequest req;
  for (const std::string& k :
       {p.legacy_api_key(), bad_checksum, std::string("lks_") + p.legacy_api_key().substr(4),
        std::string(), std::string(10 * 1024, '#'), GenerateKey(v1::SECRET_KEY)}) {
    req.add_keys(k);
  }
  grpc::ClientContext ctx;
  v1::ValidateBatchResponse resp;
  REQUIRE(stub->ValidateBatch(&ctx, req, &resp).ok());
  std::vector<v1::Verdict> verdicts;
  for (const auto& r : resp.results()) verdicts.push_back(r.verdict());
  REQUIRE(verdicts == std::vector<v1::Verdict>{v1::VALID, v1::MALFORMED, v1::MALFORMED,
                                               v1::MALFORMED, v1::MALFORMED, v1::UNKNOWN});
  REQUIRE(resp.results(0).project_id() == p.project().project_id());
  REQUIRE(resp.results(0).key_id() == p.legacy_key().key_id());
}

TEST_CASE("a batch larger than --max-batch is INVALID_ARGUMENT") {
  Cluster c;
  SidecarOptions options;
  options.max_batch = 3;
  SidecarServer& s = c.AddSidecar(options);
  auto stub = v1::Validator::NewStub(testing::Channel(s.address()));
  v1::ValidateBatchRequest req;
  for (int i = 0; i < 4; ++i) req.add_keys("x");
  grpc::ClientContext ctx;
  v1::ValidateBatchResponse resp;
  REQUIRE(stub->ValidateBatch(&ctx, req, &resp).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_CASE("past --max-staleness a sidecar turns NOT_SERVING, and rejects under reject policy") {
  Cluster c;
  SidecarOptions serve, reject;
  serve.max_staleness = reject.max_staleness = absl::Milliseconds(500);
  reject.stale_policy = StalePolicy::kReject;
  SidecarServer& s1 = c.AddSidecar(serve);
  SidecarServer& s2 = c.AddSidecar(reject);
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  REQUIRE(c.AllCaughtUp());
  REQUIRE(Verdict(s2.address(), p.legacy_api_key()) == v1::VALID);
  for (SidecarServer* s : {&s1, &s2}) {
    REQUIRE(
        Eventually([&] { return testing::Health(testing::Channel(s->address())) == "SERVING"; }));
  }
  c.StopAuthority();
  REQUIRE(
      Eventually([&] { return testing::Health(testing::Channel(s1.address())) == "NOT_SERVING"; }));
  REQUIRE(
      Eventually([&] { return testing::Health(testing::Channel(s2.address())) == "NOT_SERVING"; }));
  REQUIRE(Verdict(s1.address(), p.legacy_api_key()) == v1::VALID);
  REQUIRE(Verdict(s2.address(), p.legacy_api_key()) == v1::UNKNOWN);
  REQUIRE(Verdict(s2.address(), "garbage") == v1::MALFORMED);
}

TEST_CASE("an expired key stops validating while the authority is unreachable") {
  Cluster c;
  SidecarServer& s = c.AddSidecar();
  const std::string project = c.admin().CreateProject("shop").project().project_id();
  v1::GenerateApiKeyRequest req;
  req.set_project_id(project);
  req.set_name("temp");
  *req.mutable_expire_time() = ToProto(absl::Now() + absl::Milliseconds(700));
  v1::GenerateApiKeyResponse resp;
  REQUIRE(c.admin().Call(&v1::KeyAdmin::Stub::GenerateApiKey, req, &resp).ok());
  REQUIRE(c.AllCaughtUp());
  c.StopAuthority();
  REQUIRE(Eventually([&] { return Verdict(s.address(), resp.api_key()) == v1::EXPIRED; }));
}

TEST_CASE("a sidecar restarted while the authority is down serves from its state file") {
  Cluster c;
  SidecarOptions options;
  options.state_file = c.dir() / "pod.state";
  options.state_interval = absl::Milliseconds(50);
  options.sidecar_id = "pod-0";
  SidecarServer& first = c.AddSidecar(options);
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  const v1::GenerateApiKeyResponse live = c.admin().GenerateApiKey(p.project().project_id());
  const v1::GenerateApiKeyResponse revoked = c.admin().GenerateApiKey(p.project().project_id());
  REQUIRE(c.admin().Revoke(revoked.key().key_id()).ok());
  REQUIRE(c.AllCaughtUp());
  const std::vector<std::string> known = first.keys().Dump();
  // Killed, as a pod is: no shutdown, so only the periodic save counts.
  REQUIRE(Eventually([&] {
    KeySet::Builder b;
    absl::StatusOr<SavedState> saved = LoadState(options.state_file, b);
    return saved.ok() && saved->revision == first.sync_state().applied;
  }));
  c.sidecars().clear();
  c.StopAuthority();

  // Back without the authority: the keys it knew, not UNKNOWN for all.
  SidecarServer& second = c.AddSidecar(options);
  CHECK(second.sync_state().restored);
  CHECK(second.keys().Dump() == known);
  CHECK(Verdict(second.address(), live.api_key()) == v1::VALID);
  CHECK(Verdict(second.address(), revoked.api_key()) == v1::REVOKED);
  CHECK(
      Eventually([&] { return testing::Health(testing::Channel(second.address())) == "SERVING"; }));

  // The authority returns: a replay from the saved revision, no snapshot.
  c.StartAuthority();
  const v1::GenerateApiKeyResponse later = c.admin().GenerateApiKey(p.project().project_id());
  REQUIRE(c.AllCaughtUp());
  CHECK(Verdict(second.address(), later.api_key()) == v1::VALID);
  CHECK(second.sync_state().snapshots == 0);
  CHECK(second.sync_state().events >= 1);
}

TEST_CASE("a corrupt state file is ignored: the sidecar starts empty and syncs") {
  Cluster c;
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  SidecarOptions options;
  options.state_file = c.dir() / "pod.state";
  REQUIRE(WritePrivateFile(options.state_file, "LKSTATE1 not a state file at all").ok());
  c.StopAuthority();
  SidecarServer& s = c.AddSidecar(options);
  CHECK_FALSE(s.sync_state().restored);
  CHECK(Verdict(s.address(), p.legacy_api_key()) == v1::UNKNOWN);
  c.StartAuthority();
  CHECK(Eventually([&] { return Verdict(s.address(), p.legacy_api_key()) == v1::VALID; }));
}

TEST_CASE("staleness after a cold start counts from the saved confirmation") {
  Cluster c;
  SidecarOptions options;
  options.state_file = c.dir() / "pod.state";
  options.max_staleness = absl::Milliseconds(300);
  options.stale_policy = StalePolicy::kReject;
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  c.AddSidecar(options);
  REQUIRE(c.AllCaughtUp());
  c.sidecars().clear();  // a clean shutdown saves the latest confirmation
  c.StopAuthority();
  absl::SleepFor(absl::Milliseconds(400));
  SidecarServer& s = c.AddSidecar(options);
  CHECK(s.sync_state().restored);
  CHECK_FALSE(s.fresh());
  CHECK(Verdict(s.address(), p.legacy_api_key()) == v1::UNKNOWN);  // rejecting: stale
}

TEST_CASE("a sidecar offline past the event retention catches up by snapshot to the same set") {
  AuthorityOptions options;
  options.event_retention = 10;
  Cluster c(options);
  SidecarServer& s = c.AddSidecar();
  const std::string project = c.admin().CreateProject("shop").project().project_id();
  REQUIRE(c.AllCaughtUp());
  REQUIRE(s.sync_state().snapshots == 1);
  c.StopAuthority();
  {
    // While it is down, 30 mutations straight into its store.
    std::unique_ptr<KeyStore> store = c.OpenStore();
    auto core = *KeyAuthority::Create(store.get(), *Sealer::LoadOrCreate(c.master_key_file()), {});
    const Caller admin{"prn_x", "admin", v1::ROLE_ADMIN};
    for (int i = 0; i < 30; ++i) {
      v1::GenerateSecretKeyRequest g;
      g.set_project_id(project);
      g.set_name("k" + std::to_string(i));
      absl::StatusOr<v1::GenerateSecretKeyResponse> made = core->GenerateSecretKey(admin, g);
      REQUIRE(made.ok());
      if (i % 2 == 0) {
        v1::DeleteSecretKeyRequest d;
        d.set_key_id(made->key().key_id());
        d.set_confirm("DELETE");
        REQUIRE(core->DeleteSecretKey(admin, d).ok());
      }
    }
  }
  c.StartAuthority(options);
  REQUIRE(c.AllCaughtUp());
  REQUIRE(s.sync_state().snapshots == 2);  // the gap was answered with a snapshot
  SidecarServer& fresh = c.AddSidecar();
  REQUIRE(c.AllCaughtUp());
  REQUIRE(s.keys().Dump() == fresh.keys().Dump());
  REQUIRE(s.keys().size() == 1 + 15);
}

TEST_CASE("the watch contract holds through random mutations and reconnects") {
  AuthorityOptions options;
  options.event_retention = 40;  // some reconnects land past it
  Cluster c(options);
  struct Log {
    std::mutex mu;
    std::vector<std::pair<uint64_t, bool>> applied;
  };
  std::vector<std::unique_ptr<Log>> logs;
  for (int i = 0; i < 3; ++i) {
    logs.push_back(std::make_unique<Log>());
    Log* log = logs.back().get();
    SidecarOptions o;
    o.on_applied = [log](uint64_t rev, bool snapshot) {
      std::lock_guard<std::mutex> lock(log->mu);
      log->applied.emplace_back(rev, snapshot);
    };
    c.AddSidecar(o);
  }
  std::mt19937 rng(Catch::rngSeed());
  std::vector<std::string> projects, api_keys, secret_keys;
  for (int i = 0; i < 3; ++i) {
    projects.push_back(c.admin().CreateProject("p" + std::to_string(i)).project().project_id());
  }
  auto pick = [&](std::vector<std::string>& v) { return v[rng() % v.size()]; };
  for (int step = 0; step < 300; ++step) {
    switch (rng() % 8) {
      case 0:
      case 1:
        try {
          api_keys.push_back(c.admin().GenerateApiKey(pick(projects)).key().key_id());
        } catch (const std::exception&) {  // project full
        }
        break;
      case 2:
        try {
          secret_keys.push_back(c.admin().GenerateSecretKey(pick(projects)).key().key_id());
        } catch (const std::exception&) {
        }
        break;
      case 3:
        if (!api_keys.empty()) (void)c.admin().Revoke(pick(api_keys));
        break;
      case 4:
        if (!api_keys.empty()) {
          v1::RotateApiKeyRequest r;
          r.set_key_id(pick(api_keys));
          v1::RotateApiKeyResponse resp;
          (void)c.admin().Call(&v1::KeyAdmin::Stub::RotateApiKey, r, &resp);
        }
        break;
      case 5:
        if (!secret_keys.empty()) {
          v1::DeleteSecretKeyRequest d;
          d.set_key_id(pick(secret_keys));
          d.set_confirm("DELETE");
          v1::DeleteSecretKeyResponse resp;
          (void)c.admin().Call(&v1::KeyAdmin::Stub::DeleteSecretKey, d, &resp);
        }
        break;
      case 6: {
        v1::SetApiAccessRequest a;
        a.set_project_id(pick(projects));
        a.set_enabled(rng() % 2 == 0);
        v1::Project resp;
        REQUIRE(c.admin().Call(&v1::KeyAdmin::Stub::SetApiAccess, a, &resp).ok());
        break;
      }
      case 7:
        c.sidecars()[rng() % 3]->Reconnect();
        break;
    }
  }
  REQUIRE(c.AllCaughtUp(std::chrono::seconds(20)));
  SidecarServer& reference = c.AddSidecar();  // a fresh snapshot: the authority's set
  REQUIRE(c.AllCaughtUp());
  for (int i = 0; i < 3; ++i) {
    INFO("sidecar " << i);
    REQUIRE(c.sidecars()[i]->keys().Dump() == reference.keys().Dump());
    REQUIRE(c.sidecars()[i]->keys().DisabledProjects() == reference.keys().DisabledProjects());
    std::lock_guard<std::mutex> lock(logs[i]->mu);
    const auto& applied = logs[i]->applied;
    REQUIRE(applied.front().second);  // starts with a snapshot
    for (size_t j = 1; j < applied.size(); ++j) {
      INFO("step " << j << ": " << applied[j - 1].first << " then " << applied[j].first);
      if (applied[j].second) {
        REQUIRE(applied[j].first >= applied[j - 1].first);  // a snapshot never goes back
      } else {
        REQUIRE(applied[j].first == applied[j - 1].first + 1);  // no gap, no duplicate
      }
    }
    REQUIRE(c.sidecars()[i]->sync_state().contract_violations == 0);
  }
}

}  // namespace
}  // namespace latchkey
