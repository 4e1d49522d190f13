#include "bench/cluster_bench.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/time/clock.h"
#include "authority/core/key_authority.h"
#include "authority/core/sidecar_keys.h"
#include "authority/fanout/sidecar_snapshot.h"
#include "authority/server.h"
#include "authority/store/etcd/etcd_store.h"
#include "authority/store/rocksdb/rocksdb_store.h"
#include "bench/support.h"
#include "common/files.h"
#include "common/key_format.h"
#include "common/net.h"
#include "common/time_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "latchkey/v1/key_admin.grpc.pb.h"
#include "latchkey/v1/key_sync.grpc.pb.h"
#include "latchkey/v1/validator.grpc.pb.h"
#include "rocksdb/db.h"
#include "sidecar/sync_client.h"

namespace latchkey::bench {
namespace {

std::unique_ptr<AuthorityServer> StartAuthority(const std::string& data_dir, bool group_commit) {
  AuthorityOptions o;
  o.listen.addresses = {"127.0.0.1:0"};
  o.data_dir = data_dir;
  o.group_commit = group_commit;
  o.max_active_keys = 50;
  absl::StatusOr<std::unique_ptr<AuthorityServer>> s = AuthorityServer::Start(o);
  if (!s.ok()) {
    std::fprintf(stderr, "authority: %s\n", s.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(s);
}

}  // namespace

int Seed(const std::string& authority, const std::string& token_file, int valid, int revoked,
         const std::string& out) {
  Admin admin{v1::KeyAdmin::NewStub(OwnChannel(authority, 0)), *ReadTokenFile(token_file)};
  std::ofstream file(out);
  std::string project;
  int in_project = 50;
  for (int i = 0; i < valid + revoked; ++i) {
    if (in_project >= 45) {
      v1::CreateProjectRequest req;
      req.set_name("bench");
      v1::CreateProjectResponse resp;
      if (!admin.stub->CreateProject(admin.Ctx().get(), req, &resp).ok()) return 1;
      project = resp.project().project_id();
      file << "VALID " << resp.legacy_api_key() << "\n";
      in_project = 1;
    }
    v1::GenerateApiKeyRequest req;
    req.set_project_id(project);
    req.set_name("bench");
    v1::GenerateApiKeyResponse key;
    if (!admin.stub->GenerateApiKey(admin.Ctx().get(), req, &key).ok()) return 1;
    ++in_project;
    if (i < valid) {
      file << "VALID " << key.api_key() << "\n";
      continue;
    }
    v1::RevokeApiKeyRequest rev;
    rev.set_key_id(key.key().key_id());
    v1::Key k;
    if (!admin.stub->RevokeApiKey(admin.Ctx().get(), rev, &k).ok()) return 1;
    --in_project;
    file << "REVOKED " << key.api_key() << "\n";
  }
  return 0;
}

namespace {

// Authorities over one etcd prefix, in this process.
std::vector<std::unique_ptr<AuthorityServer>> StartReplicas(const std::string& endpoints,
                                                            int replicas, std::string* token) {
  const Shared shared = MakeShared();
  *token = shared.token;
  AuthorityOptions o;
  o.listen.addresses = {"127.0.0.1:0"};
  o.store = "etcd";
  o.etcd.endpoints = *ParseEndpoints(endpoints);
  o.etcd.prefix = "/bench-" + RandomBase62(12) + "/";
  o.master_key_file = shared.master_key_file;
  o.bootstrap_token_file = shared.token_file;
  o.max_active_keys = 50;
  std::vector<std::unique_ptr<AuthorityServer>> servers;
  for (int r = 0; r < replicas; ++r) {
    absl::StatusOr<std::unique_ptr<AuthorityServer>> s = AuthorityServer::Start(o);
    if (!s.ok()) {
      std::fprintf(stderr, "authority: %s\n", s.status().ToString().c_str());
      std::exit(1);
    }
    servers.push_back(*std::move(s));
  }
  return servers;
}

StoreStats SumStats(const std::vector<std::unique_ptr<AuthorityServer>>& servers) {
  StoreStats sum;
  for (const auto& s : servers) {
    const StoreStats one = s->store().stats();
    sum.commits += one.commits;
    sum.conflicts += one.conflicts;
    sum.syncs += one.syncs;
  }
  return sum;
}

}  // namespace

int Propagation(int n, int revocations, const std::string& samples_out,
                const PropagationAuthority& where) {
  std::vector<std::unique_ptr<AuthorityServer>> servers;  // in this process
  pid_t pid = 0;                                          // or its own
  std::string address, token;
  if (!where.authority_bin.empty()) {
    const AuthorityProcess started = StartFreshAuthority(where.authority_bin, where.etcd_endpoints);
    pid = started.pid;
    address = started.address;
    token = started.token;
  } else {
    if (where.etcd_endpoints.empty()) {
      servers.push_back(StartAuthority(TempDataDir("authority"), true));
      token = *ReadTokenFile(servers[0]->admin_token_path());
    } else {
      servers = StartReplicas(where.etcd_endpoints, 1, &token);
    }
    address = servers[0]->address();
  }
  Admin admin{v1::KeyAdmin::NewStub(OwnChannel(address, 0)), token};
  v1::CreatePrincipalRequest pr;
  pr.set_name("bench sidecars");
  pr.set_role(v1::ROLE_SIDECAR);
  v1::CreatePrincipalResponse principal;
  if (!admin.stub->CreatePrincipal(admin.Ctx().get(), pr, &principal).ok()) return 1;

  // When each sidecar applied each revision, by revision then sidecar; the
  // main thread sleeps on `all` rather than polling (a polling thread would
  // take CPU from what is measured).
  struct Applied {
    std::mutex mu;
    std::condition_variable all;
    std::map<uint64_t, std::map<int, Clock::time_point>> at;
  } applied;
  // Real sidecar code: a KeySet and a SyncClient each, each on its own connection.
  struct Side {
    KeySet keys;
    std::unique_ptr<SyncClient> sync;
  };
  std::vector<std::unique_ptr<Side>> sides;
  for (int i = 0; i < n; ++i) {
    auto side = std::make_unique<Side>();
    SyncOptions o;
    o.channel = OwnChannel(address, i + 1);
    o.token = principal.token();
    o.sidecar_id = "bench-" + std::to_string(i);
    o.on_applied = [&applied, i, n](uint64_t rev, bool) {
      const Clock::time_point now = Clock::now();
      std::lock_guard<std::mutex> lock(applied.mu);
      std::map<int, Clock::time_point>& by_side = applied.at[rev];
      by_side.emplace(i, now);
      if (by_side.size() == static_cast<size_t>(n)) applied.all.notify_all();
    };
    side->sync = std::make_unique<SyncClient>(std::move(o), &side->keys);
    side->sync->Start();
    sides.push_back(std::move(side));
  }
  // The keys to revoke, in projects of 40.
  std::vector<v1::GenerateApiKeyResponse> keys;
  std::string project;
  for (int i = 0; i < revocations; ++i) {
    if (i % 40 == 0) {
      v1::CreateProjectRequest req;
      req.set_name("bench");
      v1::CreateProjectResponse resp;
      if (!admin.stub->CreateProject(admin.Ctx().get(), req, &resp).ok()) return 1;
      project = resp.project().project_id();
    }
    v1::GenerateApiKeyRequest req;
    req.set_project_id(project);
    req.set_name("bench");
    if (!admin.stub->GenerateApiKey(admin.Ctx().get(), req, &keys.emplace_back()).ok()) return 1;
  }
  // Every sidecar caught up before the timed part.
  const uint64_t setup_head = keys.empty() ? 0 : keys.back().key().revision();
  auto all_applied = [&] {
    for (auto& s : sides) {
      if (s->sync->state().applied < setup_head) return false;
    }
    return true;
  };
  for (const auto deadline = Clock::now() + std::chrono::seconds(60); !all_applied();) {
    if (Clock::now() > deadline) return 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    std::lock_guard<std::mutex> lock(applied.mu);
    applied.at.clear();
  }
  // Two clocks: from the RevokeApiKey request being sent, and from its
  // response being read (a sidecar often applies before the client has read
  // the response; that counts as 0).
  std::vector<double> from_sent, from_return;
  uint64_t wrong = 0;
  const double authority_cpu = pid != 0 ? CpuSeconds(pid) : 0, own_cpu = CpuSeconds(getpid());
  for (const auto& key : keys) {
    v1::RevokeApiKeyRequest req;
    req.set_key_id(key.key().key_id());
    v1::Key revoked;
    const auto sent = Clock::now();
    if (!admin.stub->RevokeApiKey(admin.Ctx().get(), req, &revoked).ok()) return 1;
    const auto returned = Clock::now();
    std::map<int, Clock::time_point> at;
    {
      std::unique_lock<std::mutex> lock(applied.mu);
      if (!applied.all.wait_until(lock, returned + std::chrono::seconds(10), [&] {
            return applied.at[revoked.revision()].size() == static_cast<size_t>(n);
          })) {
        return 1;
      }
      at = std::move(applied.at[revoked.revision()]);
      applied.at.erase(revoked.revision());
    }
    for (const auto& [side, when] : at) {
      from_sent.push_back(Ms(when - sent));
      from_return.push_back(std::max(0.0, Ms(when - returned)));
    }
    for (auto& s : sides) {
      if (s->keys.Validate(key.api_key(), absl::Now()).verdict != v1::REVOKED) ++wrong;
    }
  }
  // CPU per revocation: of the authority's own process (when it has one),
  // and of this one (the sidecars' sync code, and the authority when in it).
  const double per = std::max(1, revocations);
  const double authority_cpu_ms = pid != 0 ? (CpuSeconds(pid) - authority_cpu) * 1000 / per : -1;
  const double own_cpu_ms = (CpuSeconds(getpid()) - own_cpu) * 1000 / per;
  if (!samples_out.empty()) {
    std::ofstream samples(samples_out);
    for (double d : from_sent) samples << d << "\n";
  }
  std::printf(
      "{\"bench\":\"propagation\",\"store\":\"%s\",\"process\":%s,\"sidecars\":%d,"
      "\"revocations\":%d,\"p50_ms\":%.3f,"
      "\"p99_ms\":%.3f,\"max_ms\":%.3f,\"sent_p50_ms\":%.3f,\"sent_p99_ms\":%.3f,"
      "\"sent_max_ms\":%.3f,\"authority_cpu_ms\":%.1f,\"sidecars_cpu_ms\":%.1f,"
      "\"not_revoked\":%llu}\n",
      where.etcd_endpoints.empty() ? "rocksdb" : "etcd", pid != 0 ? "true" : "false", n,
      revocations, Quantile(from_return, 0.5), Quantile(from_return, 0.99),
      Quantile(from_return, 1.0), Quantile(from_sent, 0.5), Quantile(from_sent, 0.99),
      Quantile(from_sent, 1.0), authority_cpu_ms, own_cpu_ms,
      static_cast<unsigned long long>(wrong));
  for (auto& s : sides) s->sync->Stop();
  if (pid != 0) {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  }
  return wrong == 0 ? 0 : 1;
}

namespace {

// Compacts every table of the database at `path`, whole. A store that grew
// to a million keys over days has long been compacted; a bulk load leaves
// dozens of level-0 files, and their compaction would otherwise run inside
// the next authority opened on them, on the CPU a benchmark is measuring.
bool CompactAll(const std::string& path) {
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok()) return false;
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const std::string& name : names) families.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(rocksdb::DBOptions(), path, families, &handles, &raw).ok()) return false;
  const std::unique_ptr<rocksdb::DB> db(raw);
  bool compacted = true;
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    compacted &= db->CompactRange(rocksdb::CompactRangeOptions(), h, nullptr, nullptr).ok();
    compacted &= db->DestroyColumnFamilyHandle(h).ok();
  }
  return compacted;
}

}  // namespace

int Load(const std::string& data_dir, int keys) {
  std::filesystem::create_directories(data_dir);
  RocksDbStoreOptions so;
  so.path = data_dir + "/db";
  so.sync = false;  // a bulk load: one fsync per key would take hours
  auto store = *OpenRocksDbStore(so);
  auto core =
      *KeyAuthority::Create(store.get(), *Sealer::LoadOrCreate(data_dir + "/master.key"), {});
  if (!core->BootstrapAdmin(data_dir + "/admin.token").ok()) return 1;
  const Caller admin{"prn_bench", "bench", v1::ROLE_ADMIN};
  v1::CreatePrincipalRequest pr;
  pr.set_name("bench sidecars");
  pr.set_role(v1::ROLE_SIDECAR);
  if (!WritePrivateFile(data_dir + "/sidecar.token", core->CreatePrincipal(admin, pr)->token())
           .ok()) {
    return 1;
  }
  const auto start = Clock::now();
  std::string project;
  for (int i = 0; i < keys; ++i) {
    if (i % 50 == 0) {
      v1::CreateProjectRequest req;
      req.set_name("bench");
      project = core->CreateProject(admin, req)->project().project_id();  // + its legacy key
      continue;
    }
    if (i % 2 == 0) {
      v1::GenerateApiKeyRequest req;
      req.set_project_id(project);
      req.set_name("bench");
      if (!core->GenerateApiKey(admin, req).ok()) return 1;
    } else {
      v1::GenerateSecretKeyRequest req;
      req.set_project_id(project);
      req.set_name("bench");
      if (!core->GenerateSecretKey(admin, req).ok()) return 1;
    }
  }
  const double seconds = Ms(Clock::now() - start) / 1000;
  core.reset();
  store.reset();
  if (!CompactAll(so.path)) return 1;
  std::printf("{\"bench\":\"load\",\"keys\":%d,\"seconds\":%.1f}\n", keys, seconds);
  return 0;
}

int SnapshotRead(const std::string& data_dir) {
  RocksDbStoreOptions so;
  so.path = data_dir + "/db";
  absl::StatusOr<std::unique_ptr<KeyStore>> opened = OpenRocksDbStore(so);
  if (!opened.ok()) {
    std::fprintf(stderr, "snapshot-read: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  KeyStore& store = **opened;
  size_t keys = 0, bytes = 0;
  // Before the sidecar keys rows: every key record parsed, projected and
  // encoded into chunks of 256 keys, as SidecarSnapshot did.
  const double records_start = CpuSeconds(getpid());
  std::unique_ptr<StoreSnapshot> at = store.Snapshot();
  for (std::string after;;) {
    absl::StatusOr<Page> page = store.Scan(Table::kKeys, "", after, 256, at.get());
    if (!page.ok()) return 1;
    v1::SnapshotChunk chunk;
    for (const Row& row : page->rows) {
      internal::KeyRecord rec;
      if (!rec.ParseFromString(row.value)) return 1;
      for (v1::KeyEntry& e : SidecarEntries(rec)) *chunk.add_entries() = std::move(e);
      ++keys;
    }
    bytes += chunk.SerializeAsString().size();
    if (!page->more) break;
    after = page->rows.back().key;
  }
  const double records_cpu = CpuSeconds(getpid()) - records_start;
  // Now: the rows copied (SidecarSnapshot, without the network).
  const double rows_start = CpuSeconds(getpid());
  size_t row_bytes = 0;
  SidecarSnapshot snapshot(store);
  for (std::string chunk;;) {
    absl::StatusOr<bool> more = snapshot.Next(chunk);
    if (!more.ok()) return 1;
    if (!*more) break;
    row_bytes += chunk.size();
  }
  const double rows_cpu = CpuSeconds(getpid()) - rows_start;
  std::printf(
      "{\"bench\":\"snapshot_read\",\"keys\":%zu,\"records_cpu_s\":%.3f,"
      "\"sidecar_keys_cpu_s\":%.3f,\"records_bytes\":%zu,\"sidecar_keys_bytes\":%zu}\n",
      keys, records_cpu, rows_cpu, bytes, row_bytes);
  return row_bytes > 0 || keys == 0 ? 0 : 1;
}

int Snapshot(const std::string& sidecar_bin, const std::string& authority,
             const std::string& token_file, int expected_keys, pid_t authority_pid) {
  // A port nothing listens on. gRPC servers bind with SO_REUSEPORT, so on a
  // port another server already holds (a pid-derived one can be) the sidecar
  // starts all the same, and the other server can answer the health check.
  const std::string listen = "127.0.0.1:" + std::to_string(PickFreePort());
  const double authority_cpu = authority_pid != 0 ? CpuSeconds(authority_pid) : 0;
  const auto start = Clock::now();
  const pid_t pid =
      StartProcess({sidecar_bin, "--listen", listen, "--authority", authority, "--token-file",
                    token_file, "--metrics-listen", "", "--log-level", "warn"});
  while (!Serving(listen) && Clock::now() - start < std::chrono::minutes(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double seconds = Ms(Clock::now() - start) / 1000;
  // The authority's CPU for this one stream's snapshot (its progress ticks
  // meanwhile cost microseconds).
  const double authority_cpu_s =
      authority_pid != 0 ? CpuSeconds(authority_pid) - authority_cpu : -1;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // freed snapshot buffers settle
  const long rss_kib = ResidentKiB(pid);
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  std::printf(
      "{\"bench\":\"snapshot\",\"keys\":%d,\"seconds\":%.3f,\"rss_kib\":%ld,"
      "\"authority_cpu_s\":%.3f}\n",
      expected_keys, seconds, rss_kib, authority_cpu_s);
  return 0;
}

int Writes(int clients, double seconds, const WritesStore& store) {
  const bool etcd = !store.etcd_endpoints.empty();
  std::vector<std::unique_ptr<AuthorityServer>> servers;
  std::string token;
  if (etcd) {
    servers = StartReplicas(store.etcd_endpoints, store.replicas, &token);
  } else {
    servers.push_back(StartAuthority(TempDataDir("authority"), store.group_commit));
    token = *ReadTokenFile(servers[0]->admin_token_path());
  }
  std::atomic<uint64_t> mutations{0}, errors{0};
  std::atomic<bool> go{false}, stop{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      // Clients spread evenly over the replicas.
      const std::string address = servers[c % servers.size()]->address();
      Admin admin{v1::KeyAdmin::NewStub(OwnChannel(address, c)), token};
      v1::CreateProjectRequest cp;
      cp.set_name("bench");
      v1::CreateProjectResponse project;
      if (!admin.stub->CreateProject(admin.Ctx().get(), cp, &project).ok()) return;
      while (!go) std::this_thread::yield();
      while (!stop) {
        v1::GenerateApiKeyRequest g;
        g.set_project_id(project.project().project_id());
        g.set_name("bench");
        v1::GenerateApiKeyResponse key;
        v1::RevokeApiKeyRequest r;
        v1::Key revoked;
        if (!admin.stub->GenerateApiKey(admin.Ctx().get(), g, &key).ok()) {
          ++errors;
          continue;
        }
        r.set_key_id(key.key().key_id());
        if (!admin.stub->RevokeApiKey(admin.Ctx().get(), r, &revoked).ok()) ++errors;
        if (!stop) mutations += 2;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(etcd ? 2000 : 300));  // projects created
  const StoreStats before = SumStats(servers);
  const double own_cpu = CpuSeconds(getpid()), etcd_cpu = CpuSeconds(store.etcd_pids);
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  const StoreStats after = SumStats(servers);
  // CPU ms per mutation: this process (clients and authorities), and etcd.
  const double done = std::max<double>(1, mutations.load());
  const double own_cpu_ms = (CpuSeconds(getpid()) - own_cpu) * 1000 / done;
  const double etcd_cpu_ms = (CpuSeconds(store.etcd_pids) - etcd_cpu) * 1000 / done;
  for (std::thread& t : threads) t.join();
  const double commits = static_cast<double>(after.commits - before.commits);
  std::printf(
      "{\"bench\":\"writes\",\"store\":\"%s\",\"replicas\":%zu,\"clients\":%d,"
      "\"group_commit\":%s,\"mutations_per_s\":%.0f,\"fsyncs_per_mutation\":%.3f,"
      "\"conflicts_per_mutation\":%.3f,\"cpu_ms_per_mutation\":%.3f,"
      "\"etcd_cpu_ms_per_mutation\":%.3f,\"errors\":%llu}\n",
      etcd ? "etcd" : "rocksdb", servers.size(), clients,
      etcd || store.group_commit ? "true" : "false", mutations / seconds,
      commits > 0 ? (after.syncs - before.syncs) / commits : 0.0,
      commits > 0 ? (after.conflicts - before.conflicts) / commits : 0.0, own_cpu_ms,
      store.etcd_pids.empty() ? -1.0 : etcd_cpu_ms, static_cast<unsigned long long>(errors.load()));
  return 0;
}

int Usage(int clients, double seconds, const std::string& etcd_endpoints) {
  const bool etcd = !etcd_endpoints.empty();
  std::vector<std::unique_ptr<AuthorityServer>> servers;
  std::string token;
  if (etcd) {
    servers = StartReplicas(etcd_endpoints, 1, &token);
  } else {
    servers.push_back(StartAuthority(TempDataDir("authority"), true));
    token = *ReadTokenFile(servers[0]->admin_token_path());
  }
  AuthorityServer& server = *servers[0];
  // 200 keys: four projects, each its legacy key and 49 more.
  Admin admin{v1::KeyAdmin::NewStub(OwnChannel(server.address(), 0)), token};
  std::vector<std::string> key_ids;
  for (int p = 0; p < 4; ++p) {
    v1::CreateProjectRequest cp;
    cp.set_name("bench");
    v1::CreateProjectResponse project;
    if (!admin.stub->CreateProject(admin.Ctx().get(), cp, &project).ok()) return 1;
    key_ids.push_back(project.legacy_key().key_id());
    for (int k = 1; k < 50; ++k) {
      v1::GenerateApiKeyRequest g;
      g.set_project_id(project.project().project_id());
      g.set_name("bench");
      v1::GenerateApiKeyResponse key;
      if (!admin.stub->GenerateApiKey(admin.Ctx().get(), g, &key).ok()) return 1;
      key_ids.push_back(key.key().key_id());
    }
  }
  if (!server.authority().FlushUsage().ok()) return 1;  // takes the usage writer
  // Every report answered OK (the check of the counts), and those answered
  // within the timed window (the rate).
  std::atomic<uint64_t> answered{0}, reports{0}, errors{0};
  std::atomic<bool> go{false}, stop{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto stub = v1::KeySync::NewStub(OwnChannel(server.address(), c + 1));
      v1::ReportUsageRequest req;
      req.set_sidecar_id("bench-" + std::to_string(c));
      for (const std::string& id : key_ids) {
        v1::KeyUsage* u = req.add_usage();
        u->set_key_id(id);
        u->set_count(3);
        *u->mutable_last_used_time() = ToProto(absl::Now());
      }
      while (!go) std::this_thread::yield();
      while (!stop) {
        grpc::ClientContext ctx;
        ctx.AddMetadata("authorization", "Bearer " + token);
        v1::ReportUsageResponse resp;
        if (!stub->ReportUsage(&ctx, req, &resp).ok()) {
          ++errors;
          continue;
        }
        ++answered;
        if (!stop) ++reports;
      }
    });
  }
  const double cpu = CpuSeconds(getpid());
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (std::thread& t : threads) t.join();
  // CPU of this whole process (the authority and its clients) per report.
  const double cpu_ms_per_report =
      (CpuSeconds(getpid()) - cpu) * 1000 / std::max<double>(1, reports.load());
  // What the reports cost the store: the next flush (the periodic one may
  // have run meanwhile; this one writes what came after it).
  const uint64_t writes_before = server.store().stats().advisory_writes;
  const auto flush_start = Clock::now();
  if (!server.authority().FlushUsage().ok()) return 1;
  const double flush_ms = Ms(Clock::now() - flush_start);
  const uint64_t flush_writes = server.store().stats().advisory_writes - writes_before;
  v1::GetKeyRequest get;
  get.set_key_id(key_ids.back());
  v1::Key key;
  if (!admin.stub->GetKey(admin.Ctx().get(), get, &key).ok()) return 1;
  const bool counted = key.use_count() == 3 * answered.load();
  std::printf(
      "{\"bench\":\"usage\",\"store\":\"%s\",\"clients\":%d,\"keys_per_report\":%zu,"
      "\"reports_per_s\":%.0f,\"cpu_ms_per_report\":%.3f,\"flush_store_writes\":%llu,"
      "\"flush_ms\":%.1f,\"counted\":%s,\"errors\":%llu}\n",
      etcd ? "etcd" : "rocksdb", clients, key_ids.size(), reports / seconds, cpu_ms_per_report,
      static_cast<unsigned long long>(flush_writes), flush_ms, counted ? "true" : "false",
      static_cast<unsigned long long>(errors.load()));
  return counted && errors == 0 ? 0 : 1;
}

namespace {

// Waits until `followers` streams are connected and every one has
// acknowledged `revision`, by the authority's receipts (polling them costs the
// followers nothing).
bool AllAcknowledged(Admin& admin, uint64_t revision, int followers) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  for (;;) {
    v1::GetPropagationRequest req;
    req.set_revision(revision);
    v1::GetPropagationResponse resp;
    if (admin.stub->GetPropagation(admin.Ctx().get(), req, &resp).ok() &&
        resp.sidecars_connected() == static_cast<uint32_t>(followers) &&
        resp.sidecars_applied() == static_cast<uint32_t>(followers)) {
      return true;
    }
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

int SidecarCpu(const std::string& sidecar_bin, int sidecars, int revocations, bool floor) {
  std::unique_ptr<AuthorityServer> server = StartAuthority(TempDataDir("authority"), true);
  const std::string address = server->address();
  Admin admin{v1::KeyAdmin::NewStub(OwnChannel(address, 0)),
              *ReadTokenFile(server->admin_token_path())};
  v1::CreatePrincipalRequest pr;
  pr.set_name("bench sidecars");
  pr.set_role(v1::ROLE_SIDECAR);
  v1::CreatePrincipalResponse principal;
  if (!admin.stub->CreatePrincipal(admin.Ctx().get(), pr, &principal).ok()) return 1;
  const std::string token_file = TempDataDir("sidecar.token");
  if (absl::Status s = WritePrivateFile(token_file, principal.token()); !s.ok()) {
    std::fprintf(stderr, "sidecar-cpu: %s\n", s.ToString().c_str());
    return 1;
  }

  // The keys first: their creation is applied before anything is measured.
  std::vector<std::string> key_ids;
  std::string project;
  uint64_t head = 0;
  for (int i = 0; i < revocations; ++i) {
    if (i % 40 == 0) {
      v1::CreateProjectRequest cp;
      cp.set_name("bench");
      v1::CreateProjectResponse p;
      if (!admin.stub->CreateProject(admin.Ctx().get(), cp, &p).ok()) return 1;
      project = p.project().project_id();
    }
    v1::GenerateApiKeyRequest g;
    g.set_project_id(project);
    g.set_name("bench");
    v1::GenerateApiKeyResponse key;
    if (!admin.stub->GenerateApiKey(admin.Ctx().get(), g, &key).ok()) return 1;
    key_ids.push_back(key.key().key_id());
    head = key.key().revision();
  }

  // Real sidecars, or as many lean streams (bench/lean_stream.h), each a
  // process of its own.
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<pid_t> pids;
  for (int i = 0; i < sidecars; ++i) {
    const std::string id = "bench-sidecar-" + std::to_string(i);
    pids.push_back(StartProcess(
        floor ? std::vector<std::string>{self, "lean-sidecar", "--authority", address,
                                         "--token-file", token_file, "--sidecar-id", id}
              : std::vector<std::string>{
                    sidecar_bin, "--listen", "127.0.0.1:" + std::to_string(PickFreePort()),
                    "--authority", address, "--token-file", token_file, "--sidecar-id", id,
                    "--metrics-listen", "", "--log-level", "warn"}));
  }
  auto stop = [&] {
    for (pid_t pid : pids) kill(pid, SIGTERM);
    for (pid_t pid : pids) waitpid(pid, nullptr, 0);
  };
  if (!AllAcknowledged(admin, head, sidecars)) {
    stop();
    return 1;
  }

  // Idle: what the sidecars spend on their own (confirmations, usage).
  const auto idle_start = Clock::now();
  const double idle_cpu = CpuSeconds(pids);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const double idle_rate = (CpuSeconds(pids) - idle_cpu) / (Ms(Clock::now() - idle_start) / 1000);

  // The revocations, one at a time, then until every sidecar has the last.
  const auto start = Clock::now();
  const double start_cpu = CpuSeconds(pids);
  for (const std::string& id : key_ids) {
    v1::RevokeApiKeyRequest r;
    r.set_key_id(id);
    v1::Key revoked;
    if (!admin.stub->RevokeApiKey(admin.Ctx().get(), r, &revoked).ok()) {
      stop();
      return 1;
    }
    head = revoked.revision();
  }
  const bool all = AllAcknowledged(admin, head, sidecars);
  const double seconds = Ms(Clock::now() - start) / 1000;
  const double busy = CpuSeconds(pids) - start_cpu - idle_rate * seconds;
  stop();
  const double applied = static_cast<double>(sidecars) * revocations;
  std::printf(
      "{\"bench\":\"sidecar_cpu\",\"floor\":%s,\"sidecars\":%d,\"revocations\":%d,"
      "\"cpu_us_per_applied_revision\":%.1f,\"idle_cpu_ms_per_s\":%.2f,\"all_applied\":%s}\n",
      floor ? "true" : "false", sidecars, revocations, busy * 1e6 / applied,
      idle_rate * 1000 / sidecars, all ? "true" : "false");
  return all ? 0 : 1;
}

int Failover(const std::string& authority_bin, const std::string& etcd_endpoints, int rounds) {
  const Shared shared = MakeShared();
  const std::string addresses[] = {"127.0.0.1:" + std::to_string(PickFreePort()),
                                   "127.0.0.1:" + std::to_string(PickFreePort())};
  pid_t pids[2] = {0, 0};
  const std::vector<std::string> flags = EtcdFlags(shared, etcd_endpoints);
  auto start = [&](int i) { pids[i] = StartAuthorityProcess(authority_bin, addresses[i], flags); };
  start(0);
  start(1);
  Admin admins[] = {{v1::KeyAdmin::NewStub(OwnChannel(addresses[0], 0)), shared.token},
                    {v1::KeyAdmin::NewStub(OwnChannel(addresses[1], 1)), shared.token}};
  v1::CreatePrincipalRequest pr;
  pr.set_name("bench sidecar");
  pr.set_role(v1::ROLE_SIDECAR);
  v1::CreatePrincipalResponse principal;
  if (!admins[0].stub->CreatePrincipal(admins[0].Ctx().get(), pr, &principal).ok()) return 1;

  // The sidecar follows both (gRPC pick_first: the first that answers).
  KeySet keys;
  SyncOptions o;
  o.channel = OwnChannel(*ClientTarget(addresses[0] + "," + addresses[1], "bench"), 2);
  o.token = principal.token();
  o.sidecar_id = "bench-failover";
  SyncClient sync(std::move(o), &keys);
  sync.Start();

  std::vector<double> samples;
  for (int round = 0; round < rounds; ++round) {
    // pick_first goes back to the first address that answers, so the replica
    // followed alternates: 0 first, then 1 (0 was killed), then 0 again.
    const int victim = round % 2, survivor = 1 - victim;
    // Caught up, on the victim.
    v1::CreateProjectRequest cp;
    cp.set_name("before");
    v1::CreateProjectResponse before;
    if (!admins[survivor].stub->CreateProject(admins[survivor].Ctx().get(), cp, &before).ok()) {
      return 1;
    }
    for (const auto deadline = Clock::now() + std::chrono::seconds(30);
         sync.state().applied < before.revision();) {
      if (Clock::now() > deadline) return 1;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));

    const auto killed = Clock::now();
    kill(pids[victim], SIGKILL);
    waitpid(pids[victim], nullptr, 0);
    cp.set_name("after");
    v1::CreateProjectResponse after;
    if (!admins[survivor].stub->CreateProject(admins[survivor].Ctx().get(), cp, &after).ok()) {
      return 1;
    }
    for (const auto deadline = killed + std::chrono::seconds(30);
         sync.state().applied < after.revision();) {
      if (Clock::now() > deadline) return 1;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    samples.push_back(Ms(Clock::now() - killed));
    start(victim);
  }
  sync.Stop();
  for (pid_t pid : pids) {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  }
  std::string list;
  for (double ms : samples) list += (list.empty() ? "" : ",") + std::to_string(ms);
  std::printf(
      "{\"bench\":\"failover\",\"rounds\":%d,\"p50_ms\":%.1f,\"max_ms\":%.1f,"
      "\"samples_ms\":[%s],\"snapshots\":%llu}\n",
      rounds, Quantile(samples, 0.5), Quantile(samples, 1.0), list.c_str(),
      static_cast<unsigned long long>(sync.state().snapshots));
  return 0;
}

}  // namespace latchkey::bench
