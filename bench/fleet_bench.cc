#include "bench/fleet_bench.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench/lean_stream.h"
#include "bench/support.h"
#include "common/memory_release.h"
#include "latchkey/v1/key_sync.grpc.pb.h"

namespace latchkey::bench {
namespace {

// Says why an admin call failed.
bool Check(const grpc::Status& s) {
  if (!s.ok()) std::fprintf(stderr, "fleet: admin call: %s\n", s.error_message().c_str());
  return s.ok();
}

// Long enough for a server that checks every second to see a burst is over
// and give back what it freed.
constexpr auto kSettle = std::chrono::seconds(3);

// CPU milliseconds process `pid` uses while `work` runs, and how long it ran.
template <typename Work>
std::pair<double, double> Measure(pid_t pid, Work work) {
  const double before = CpuSeconds(pid);
  const Clock::time_point start = Clock::now();
  work();
  return {(CpuSeconds(pid) - before) * 1000, Ms(Clock::now() - start) / 1000};
}

// What the fleet runs against: a server process and what the run needs of
// it. The reaper stops the process however the run ends.
struct Target {
  pid_t pid = 0;
  std::string address;
  std::string admin_token;
  std::string stream_token;          // the sidecar principal's
  std::vector<std::string> key_ids;  // one to revoke per revision
  uint64_t head = 0;                 // the revision before the first revocation
  ~Target() {
    if (pid == 0) return;
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  }
};

// An authority process with a sidecar principal, `o.keys` keys that every
// snapshot carries and `o.revocations` keys to revoke. False when an admin
// call fails.
bool SetUpAuthority(const FleetOptions& o, Target& t) {
  std::vector<std::string> flags;
  if (!o.memory_release) flags.push_back("--memory-release-interval=0");
  const AuthorityProcess authority = StartFreshAuthority(o.authority_bin, o.etcd_endpoints, flags);
  t.pid = authority.pid;
  t.address = authority.address;
  t.admin_token = authority.token;
  Admin admin{v1::KeyAdmin::NewStub(OwnChannel(t.address, 0)), t.admin_token};
  v1::CreatePrincipalRequest pr;
  pr.set_name("fleet");
  pr.set_role(v1::ROLE_SIDECAR);
  v1::CreatePrincipalResponse principal;
  if (!Check(admin.stub->CreatePrincipal(admin.Ctx().get(), pr, &principal))) return false;
  t.stream_token = principal.token();
  std::string project;
  // Keys the snapshots carry beside those to revoke, in projects of 49.
  for (int i = 0; i < o.keys; ++i) {
    if (i % 49 == 0) {
      v1::CreateProjectRequest req;
      req.set_name("snapshot");
      v1::CreateProjectResponse resp;
      if (!Check(admin.stub->CreateProject(admin.Ctx().get(), req, &resp))) return false;
      project = resp.project().project_id();
    }
    v1::GenerateApiKeyRequest req;
    req.set_project_id(project);
    req.set_name("carried");
    v1::GenerateApiKeyResponse resp;
    if (!Check(admin.stub->GenerateApiKey(admin.Ctx().get(), req, &resp))) return false;
  }
  // The keys to revoke, in projects of 40.
  for (int i = 0; i < o.revocations; ++i) {
    if (i % 40 == 0) {
      v1::CreateProjectRequest req;
      req.set_name("fleet");
      v1::CreateProjectResponse resp;
      if (!Check(admin.stub->CreateProject(admin.Ctx().get(), req, &resp))) return false;
      project = resp.project().project_id();
    }
    v1::GenerateApiKeyRequest req;
    req.set_project_id(project);
    req.set_name("fleet");
    v1::GenerateApiKeyResponse resp;
    if (!Check(admin.stub->GenerateApiKey(admin.Ctx().get(), req, &resp))) return false;
    t.key_ids.push_back(resp.key().key_id());
    t.head = resp.key().revision();
  }
  return true;
}

// The floor (bench/sync_floor.h): this program as its own process, which
// accepts any token and key id and starts at revision 1.
void SetUpFloor(const FleetOptions& o, Target& t) {
  t.address = "127.0.0.1:" + std::to_string(PickFreePort());
  std::vector<std::string> argv = {std::filesystem::read_symlink("/proc/self/exe").string(),
                                   "sync-floor", "--listen", t.address};
  if (!o.memory_release) argv.push_back("--no-memory-release");
  t.pid = StartServerProcess(argv, t.address);
  t.admin_token = t.stream_token = "floor";
  for (int i = 0; i < o.revocations; ++i) t.key_ids.push_back("floor-" + std::to_string(i));
  t.head = 1;
}

}  // namespace

int Fleet(const FleetOptions& o) {
  Target target;
  if (o.floor) {
    SetUpFloor(o, target);
  } else if (!SetUpAuthority(o, target)) {
    return 1;
  }
  const pid_t pid = target.pid;
  Admin admin{v1::KeyAdmin::NewStub(OwnChannel(target.address, 0)), target.admin_token};
  const uint64_t setup_head = target.head;

  // The fleet starts together: every stream snapshots the key set, then waits.
  const long rss_before = ResidentKiB(pid);
  const double sync_cpu_before = CpuSeconds(pid);
  Arrivals arrivals(o.streams, setup_head + o.revocations);
  Tally tally;
  std::vector<std::unique_ptr<v1::KeySync::Stub>> stubs;
  for (int c = 0; c < o.connections; ++c) {
    stubs.push_back(v1::KeySync::NewStub(OwnChannel(target.address, c + 1)));
  }
  std::vector<std::unique_ptr<LeanStream>> streams;
  for (int i = 0; i < o.streams; ++i) {
    streams.push_back(std::make_unique<LeanStream>(*stubs[i % o.connections], target.stream_token,
                                                   "fleet-" + std::to_string(i), &arrivals,
                                                   &tally));
  }
  auto end_fleet = [&] {
    for (auto& s : streams) s->Cancel();
    for (auto& s : streams) s->WaitDone();
  };
  for (const auto deadline = Clock::now() + std::chrono::seconds(120);
       tally.synced.load() < o.streams;) {
    if (Clock::now() > deadline || tally.broken.load() > 0) {
      std::fprintf(stderr, "fleet: %d of %d streams synced, %d broken\n", tally.synced.load(),
                   o.streams, tally.broken.load());
      end_fleet();
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double sync_cpu_ms = (CpuSeconds(pid) - sync_cpu_before) * 1000;
  // The snapshots' garbage settles and, the burst over, is given back (a
  // server checks every second, and releases at the first check that finds
  // no new work).
  std::this_thread::sleep_for(kSettle);
  const long rss_after = ResidentKiB(pid);

  // At rest: a progress message per stream per --progress-interval.
  const auto [rest_cpu_ms, rest_s] = Measure(
      pid, [&] { std::this_thread::sleep_for(std::chrono::duration<double>(o.rest_seconds)); });
  const double rest_ms_per_s = rest_cpu_ms / rest_s;

  // Revocations, one at a time, each until every stream applied it.
  std::vector<double> all_applied_ms;
  bool lost = false;
  const double own_before = CpuSeconds(getpid());
  const auto [timed_cpu_ms, timed_s] = Measure(pid, [&] {
    for (const std::string& key_id : target.key_ids) {
      v1::RevokeApiKeyRequest req;
      req.set_key_id(key_id);
      v1::Key revoked;
      const Clock::time_point sent = Clock::now();
      if (!Check(admin.stub->RevokeApiKey(admin.Ctx().get(), req, &revoked))) {
        lost = true;
        return;
      }
      std::optional<Clock::time_point> all =
          arrivals.WaitAll(revoked.revision(), std::chrono::seconds(30));
      if (!all) {
        lost = true;
        return;
      }
      all_applied_ms.push_back(Ms(*all - sent));
    }
  });
  const double own_ms = (CpuSeconds(getpid()) - own_before) * 1000;
  // Again once every stream has applied the revocations (the authority may
  // still be reading the last acknowledgements): what the allocator keeps
  // after the fan-out's writes, which the figure before them does not show.
  const long rss_revoked = ResidentKiB(pid);
  // And once what the fan-out freed was given back.
  std::this_thread::sleep_for(kSettle);
  const long rss_revoked_settled = ResidentKiB(pid);
  // What giving memory back cost, over the whole run (one release after the
  // fleet synced and one after the revocations, when the server releases).
  const double release_cpu_ms = ThreadCpuSeconds(pid, MemoryRelease::kThreadName) * 1000;
  end_fleet();
  if (lost || tally.broken.load() > 0) {
    std::fprintf(stderr, "fleet: a revocation did not reach every stream (%d broken)\n",
                 tally.broken.load());
    return 1;
  }

  const double per_1000 = 1000.0 / o.streams;
  const double revs = std::max(1, o.revocations);
  // The timed part also paid for the fleet at rest meanwhile; "net" takes
  // that out, leaving what the revisions themselves cost.
  const double per_rev = timed_cpu_ms / revs * per_1000;
  const double per_rev_net = (timed_cpu_ms - rest_ms_per_s * timed_s) / revs * per_1000;
  std::printf(
      "{\"bench\":\"fleet\",\"store\":\"%s\",\"streams\":%d,\"connections\":%d,"
      "\"revocations\":%d,\"authority_cpu_ms_per_revision_per_1000\":%.1f,"
      "\"authority_cpu_ms_per_revision_per_1000_net\":%.1f,"
      "\"authority_rest_cpu_ms_per_s_per_1000\":%.2f,\"authority_kib_per_stream\":%.1f,"
      "\"authority_rss_mib\":%.1f,\"all_applied_p50_ms\":%.2f,\"all_applied_max_ms\":%.2f,"
      "\"client_cpu_us_per_revision_per_stream\":%.1f,\"keys\":%d,"
      "\"authority_sync_cpu_ms_per_1000\":%.1f,"
      "\"authority_kib_per_stream_after_revocations\":%.1f,"
      "\"authority_kib_per_stream_settled\":%.1f,\"memory_release\":%s,"
      "\"release_cpu_ms\":%.2f}\n",
      o.floor                    ? "floor"
      : o.etcd_endpoints.empty() ? "rocksdb"
                                 : "etcd",
      o.streams, o.connections, o.revocations, per_rev, per_rev_net, rest_ms_per_s * per_1000,
      static_cast<double>(rss_after - rss_before) / o.streams, rss_after / 1024.0,
      Quantile(all_applied_ms, 0.5), Quantile(all_applied_ms, 1.0),
      own_ms * 1000 / revs / o.streams, o.keys + o.revocations, sync_cpu_ms * per_1000,
      static_cast<double>(rss_revoked - rss_before) / o.streams,
      static_cast<double>(rss_revoked_settled - rss_before) / o.streams,
      o.memory_release ? "true" : "false", release_cpu_ms);
  return 0;
}

}  // namespace latchkey::bench
