// latchkey-bench: the load generator and cluster benchmarks behind scripts/bench.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "bench/cluster_bench.h"
#include "bench/edge_bench.h"
#include "bench/fleet_bench.h"
#include "bench/leak_report_bench.h"
#include "bench/lean_stream.h"
#include "bench/sync_floor.h"
#include "bench/validate_load.h"
#include "common/log.h"

namespace {

using latchkey::bench::Histogram;

// User + system CPU seconds of process `pid` so far; 0 for pid 0.
double ProcessCpuSeconds(int pid) {
  if (pid == 0) return 0;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string field;
  double ticks = 0;
  for (int i = 1; i <= 15 && stat >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

void PrintLoad(const latchkey::bench::LoadOptions& o, const latchkey::bench::LoadResult& r,
               const std::string& label, const std::string& cdf_file) {
  const Histogram& h = *r.latency;
  std::printf(
      "{\"bench\":\"validate\",\"label\":\"%s\",\"target\":\"%s\",\"connections\":%d,"
      "\"inflight\":%d,\"rate\":%.0f,\"batch\":%d,\"calls_per_s\":%.0f,\"keys_per_s\":%.0f,"
      "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
      "\"calls\":%llu,\"errors\":%llu,\"wrong_verdicts\":%llu,\"server_cpu_s\":%.3f}\n",
      label.c_str(), o.target.c_str(), o.connections, o.inflight, o.rate, o.batch,
      r.calls_per_second, r.keys_per_second, h.Quantile(0.5) / 1e3, h.Quantile(0.9) / 1e3,
      h.Quantile(0.99) / 1e3, h.Quantile(0.999) / 1e3, h.max() / 1e3,
      static_cast<unsigned long long>(r.calls), static_cast<unsigned long long>(r.errors),
      static_cast<unsigned long long>(r.wrong_verdicts), r.server_cpu_seconds);
  if (!cdf_file.empty()) {
    if (FILE* f = std::fopen(cdf_file.c_str(), "w")) {
      for (const auto& [ns, fraction] : h.Cdf()) std::fprintf(f, "%.3f %.6f\n", ns / 1e3, fraction);
      std::fclose(f);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Results go to stdout as JSON lines; logs (RocksDB's included) to stderr,
  // warnings only: the in-process authority logs every mutation.
  if (!latchkey::InitLogging("text", "warn").ok()) return 1;
  CLI::App app{"latchkey-bench: load and cluster benchmarks (see scripts/bench)"};
  app.require_subcommand(1);
  int status = 0;

  latchkey::bench::LoadOptions load;
  std::string label, cdf_file;
  auto* v = app.add_subcommand("validate", "load a Validator and report throughput and latency");
  v->add_option("--target", load.target)->required();
  v->add_option("--keys-file", load.keys_file)->required();
  v->add_option("--connections", load.connections)->capture_default_str();
  v->add_option("--inflight", load.inflight, "calls in flight per connection")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  v->add_option("--seconds", load.seconds)->capture_default_str();
  v->add_option("--warmup", load.warmup_seconds)->capture_default_str();
  v->add_option("--rate", load.rate, "calls/s, open loop; 0: closed loop")->capture_default_str();
  v->add_option("--batch", load.batch, "keys per ValidateBatch; 0: Validate")
      ->capture_default_str();
  v->add_option("--mix", load.mix.valid, "fraction of valid keys (the rest split evenly)");
  v->add_flag("!--no-check", load.check_verdicts, "do not check verdicts (empty baseline)");
  v->add_option("--label", label);
  v->add_option("--cdf", cdf_file, "write the latency CDF (us fraction) here");
  int server_pid = 0;
  v->add_option("--server-pid", server_pid,
                "report this process's CPU seconds over the run (use with --warmup 0)");
  v->callback([&] {
    const double rest = (1 - load.mix.valid) / 3;
    load.mix.revoked = load.mix.unknown = load.mix.malformed = rest;
    Histogram h;
    const double cpu_before = ProcessCpuSeconds(server_pid);
    absl::StatusOr<latchkey::bench::LoadResult> r = latchkey::bench::RunLoad(load, h);
    if (r.ok()) r->server_cpu_seconds = ProcessCpuSeconds(server_pid) - cpu_before;
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      status = 2;
      return;
    }
    PrintLoad(load, *r, label, cdf_file);
  });

  std::string listen;
  auto* e = app.add_subcommand("empty-server", "a Validator that does nothing (the baseline)");
  e->add_option("--listen", listen)->required();
  int queue_threads = 0;
  e->add_option("--queue-threads", queue_threads,
                "serve from completion queues polled by this many threads (0: callback API)");
  e->callback([&] { status = latchkey::bench::ServeEmptyValidator(listen, queue_threads); });

  std::string authority, token_file, out, data_dir, sidecar_bin;
  int valid = 1000, revoked = 100, sidecars = 10, revocations = 200, keys = 100000, clients = 8;
  double seconds = 5;
  auto* s = app.add_subcommand("seed", "make valid and revoked keys for validate runs");
  s->add_option("--authority", authority)->required();
  s->add_option("--token-file", token_file)->required();
  s->add_option("--valid", valid)->capture_default_str();
  s->add_option("--revoked", revoked)->capture_default_str();
  s->add_option("--out", out)->required();
  s->callback([&] { status = latchkey::bench::Seed(authority, token_file, valid, revoked, out); });

  auto* p = app.add_subcommand("propagation", "revocation delay to N sidecars");
  p->add_option("--sidecars", sidecars)->capture_default_str();
  p->add_option("--revocations", revocations)->capture_default_str();
  p->add_option("--samples-out", out, "write each delay (ms) here");
  latchkey::bench::PropagationAuthority propagation_authority;
  p->add_option("--etcd-endpoints", propagation_authority.etcd_endpoints,
                "one authority replica over this etcd");
  p->add_option("--authority-bin", propagation_authority.authority_bin,
                "run the authority as its own process and report each process's CPU");
  p->callback([&] {
    status = latchkey::bench::Propagation(sidecars, revocations, out, propagation_authority);
  });
  std::string etcd_endpoints;

  std::string keys_file;
  auto* ed = app.add_subcommand("edge", "validate in process with latchkey::edge, one thread");
  ed->add_option("--authority", authority)->required();
  ed->add_option("--token-file", token_file)->required();
  ed->add_option("--keys-file", keys_file)->required();
  ed->add_option("--seconds", seconds)->capture_default_str();
  ed->callback([&] { status = latchkey::bench::Edge(authority, token_file, keys_file, seconds); });

  int leak_tokens = 1000, leak_rounds = 3;
  std::string leak_etcd;
  auto* lr = app.add_subcommand("leak-report",
                                "answer GitHub secret scanning reports of N tokens, against the "
                                "same findings one at a time");
  lr->add_option("--tokens", leak_tokens)->capture_default_str();
  lr->add_option("--rounds", leak_rounds)->capture_default_str();
  lr->add_option("--etcd-endpoints", leak_etcd, "use a fresh prefix of this etcd cluster");
  lr->callback([&] { status = latchkey::bench::LeakReport(leak_tokens, leak_rounds, leak_etcd); });

  auto* l = app.add_subcommand("load", "bulk-load a data dir with N keys");
  l->add_option("--data-dir", data_dir)->required();
  l->add_option("--keys", keys)->capture_default_str();
  l->callback([&] { status = latchkey::bench::Load(data_dir, keys); });

  auto* sr = app.add_subcommand("snapshot-read", "a snapshot's reading, now and from the records");
  sr->add_option("--data-dir", data_dir)->required();
  sr->callback([&] { status = latchkey::bench::SnapshotRead(data_dir); });

  auto* sn = app.add_subcommand("snapshot", "time a sidecar's first sync, report its memory");
  sn->add_option("--sidecar-bin", sidecar_bin)->required();
  sn->add_option("--authority", authority)->required();
  sn->add_option("--token-file", token_file)->required();
  sn->add_option("--keys", keys, "keys the authority holds (for the report)")->required();
  int authority_pid = 0;
  sn->add_option("--authority-pid", authority_pid, "the authority's process, for its CPU");
  sn->callback([&] {
    status = latchkey::bench::Snapshot(sidecar_bin, authority, token_file, keys, authority_pid);
  });

  auto* w = app.add_subcommand("writes", "durable mutations per second");
  w->add_option("--clients", clients)->capture_default_str();
  w->add_option("--seconds", seconds)->capture_default_str();
  latchkey::bench::WritesStore writes_store;
  w->add_option("--group-commit", writes_store.group_commit)->capture_default_str();
  w->add_option("--etcd-endpoints", writes_store.etcd_endpoints,
                "run --replicas authorities over this etcd cluster instead");
  w->add_option("--replicas", writes_store.replicas)->capture_default_str();
  w->add_option("--etcd-pids", writes_store.etcd_pids,
                "the etcd members' process ids, to report their CPU per mutation")
      ->delimiter(',');
  w->callback([&] { status = latchkey::bench::Writes(clients, seconds, writes_store); });

  auto* us = app.add_subcommand("usage", "usage reports of 200 keys absorbed per second");
  std::string usage_etcd;
  us->add_option("--clients", clients)->capture_default_str();
  us->add_option("--seconds", seconds)->capture_default_str();
  us->add_option("--etcd-endpoints", usage_etcd, "one replica over this etcd cluster instead");
  us->callback([&] { status = latchkey::bench::Usage(clients, seconds, usage_etcd); });

  auto* fl = app.add_subcommand("fleet", "what Sync streams cost the authority, per 1,000");
  latchkey::bench::FleetOptions fleet;
  fl->add_option("--streams", fleet.streams)->capture_default_str();
  fl->add_option("--connections", fleet.connections)->capture_default_str();
  fl->add_option("--revocations", fleet.revocations)->capture_default_str();
  auto* fleet_keys = fl->add_option("--keys", fleet.keys, "more keys in every stream's snapshot")
                         ->capture_default_str();
  fl->add_option("--rest-seconds", fleet.rest_seconds)->capture_default_str();
  auto* fleet_bin = fl->add_option("--authority-bin", fleet.authority_bin);
  auto* fleet_etcd = fl->add_option("--etcd-endpoints", fleet.etcd_endpoints,
                                    "one replica over this etcd cluster");
  fl->add_flag("--floor", fleet.floor,
               "against a bare gRPC server that only fans events out (the floor), not an authority")
      ->excludes(fleet_bin)
      ->excludes(fleet_etcd)
      ->excludes(fleet_keys);
  bool no_release = false;
  fl->add_flag("--no-memory-release", no_release,
               "the server keeps what a burst freed (--memory-release-interval=0)");
  fl->callback([&] {
    fleet.memory_release = !no_release;
    if (!fleet.floor && fleet.authority_bin.empty()) {
      throw CLI::RequiredError("--authority-bin (or --floor)");
    }
    status = latchkey::bench::Fleet(fleet);
  });

  // The floor's server, run by `fleet --floor` as a process of its own.
  auto* floor = app.add_subcommand("sync-floor", "")->group("");
  std::string floor_address;
  bool floor_keeps = false;
  floor->add_option("--listen", floor_address)->required();
  floor->add_flag("--no-memory-release", floor_keeps);
  floor->callback([&] { status = latchkey::bench::SyncFloor(floor_address, !floor_keeps); });

  auto* sc = app.add_subcommand("sidecar-cpu", "real sidecars' CPU per applied revision");
  int cpu_sidecars = 4, cpu_revocations = 200;
  bool cpu_floor = false;
  auto* cpu_bin = sc->add_option("--sidecar-bin", sidecar_bin);
  sc->add_option("--sidecars", cpu_sidecars)->capture_default_str();
  sc->add_option("--revocations", cpu_revocations)->capture_default_str();
  sc->add_flag("--floor", cpu_floor,
               "lean streams that only acknowledge (the floor) instead of real sidecars")
      ->excludes(cpu_bin);
  sc->callback([&] {
    if (!cpu_floor && sidecar_bin.empty()) throw CLI::RequiredError("--sidecar-bin (or --floor)");
    status = latchkey::bench::SidecarCpu(sidecar_bin, cpu_sidecars, cpu_revocations, cpu_floor);
  });

  // The floor's sidecar, run by `sidecar-cpu --floor` as a process of its own.
  auto* lean = app.add_subcommand("lean-sidecar", "")->group("");
  std::string lean_authority, lean_token_file, lean_id;
  lean->add_option("--authority", lean_authority)->required();
  lean->add_option("--token-file", lean_token_file)->required();
  lean->add_option("--sidecar-id", lean_id)->required();
  lean->callback(
      [&] { status = latchkey::bench::LeanSidecar(lean_authority, lean_token_file, lean_id); });

  auto* fo = app.add_subcommand("failover", "sidecar failover when its authority is SIGKILLed");
  std::string authority_bin;
  int rounds = 5;
  fo->add_option("--authority-bin", authority_bin)->required();
  fo->add_option("--etcd-endpoints", etcd_endpoints)->required();
  fo->add_option("--rounds", rounds)->capture_default_str();
  fo->callback([&] { status = latchkey::bench::Failover(authority_bin, etcd_endpoints, rounds); });

  CLI11_PARSE(app, argc, argv);
  return status;
}
