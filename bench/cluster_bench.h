// Benchmarks that need an authority: seeding keys, revocation propagation,
// snapshot sync, durable writes. Each prints one JSON object on stdout.
#ifndef LATCHKEY_BENCH_CLUSTER_BENCH_H_
#define LATCHKEY_BENCH_CLUSTER_BENCH_H_

#include <string>
#include <vector>

namespace latchkey::bench {

// Makes `valid` API keys and `revoked` revoked ones on a running authority;
// writes "VALID <key>" / "REVOKED <key>" lines to `out`.
int Seed(const std::string& authority, const std::string& token_file, int valid, int revoked,
         const std::string& out);

// An authority and `sidecars` real sync clients (each its own connection);
// `revocations` revocations, each timed from RevokeApiKey returning to each
// sidecar's key set answering REVOKED. Each delay (ms from the request being
// sent) goes to `samples_out` when set.
struct PropagationAuthority {
  std::string etcd_endpoints;  // empty: the embedded store; else one replica over it
  // Empty: the authority runs in this process. Else this latchkey-authority
  // runs it as its own process, and the report gives the CPU time each
  // process used per revocation.
  std::string authority_bin;
};
int Propagation(int sidecars, int revocations, const std::string& samples_out,
                const PropagationAuthority& where);

// Fills a data dir with `keys` keys without fsync (a bulk load), plus a
// SIDECAR token in <data_dir>/sidecar.token.
int Load(const std::string& data_dir, int keys);

// Reads a whole snapshot of the store in `data_dir` (Load's) in this
// process, twice: as snapshots are read now (the sidecar keys rows, copied)
// and as they were before them (every key record parsed and projected, the
// baseline). Reports the CPU of each.
int SnapshotRead(const std::string& data_dir);

// Starts `sidecar_bin` against `authority` and times its first snapshot;
// reports its resident memory and, given the authority's process id, the
// CPU the authority spent meanwhile (the snapshot's reading and encoding).
int Snapshot(const std::string& sidecar_bin, const std::string& authority,
             const std::string& token_file, int expected_keys, pid_t authority_pid);

// `sidecars` real latchkey-sidecar processes follow an authority in this
// process through `revocations` revocations; reports the CPU each sidecar
// spent per applied revision, its idle CPU (progress ticks, usage reports)
// over the same time taken out. With `floor`, lean-sidecar processes
// (bench/lean_stream.h) follow instead: the same stream and acknowledgements
// with nothing behind them, what gRPC itself costs per revision.
int SidecarCpu(const std::string& sidecar_bin, int sidecars, int revocations, bool floor);

// GenerateApiKey + RevokeApiKey from `clients` threads for `seconds`.
// Where Writes runs its authorities: the embedded store (one authority), or
// `replicas` authorities over the etcd cluster at `etcd_endpoints`.
struct WritesStore {
  bool group_commit = true;    // embedded only
  std::string etcd_endpoints;  // empty: embedded
  int replicas = 2;
  // The etcd members' processes: the report gives the CPU time they used per
  // mutation, beside this process's.
  std::vector<int> etcd_pids;
};
int Writes(int clients, double seconds, const WritesStore& store);

// ReportUsage from `clients` threads, each a sidecar naming the same 200 keys
// in every report, for `seconds`, against one authority: on the embedded
// store, or one replica over the etcd cluster at `etcd_endpoints`. Reports
// the reports absorbed per second, the authority's CPU per report, and the
// store writes of the flush that follows (one row per key, however many
// reports named it).
int Usage(int clients, double seconds, const std::string& etcd_endpoints);

// Two `authority_bin` processes over the etcd cluster at `etcd_endpoints` and
// one sidecar's real sync code following both. Each round SIGKILLs the
// replica the sidecar follows, commits a mutation on the other, and times
// from the kill to the sidecar applying it; then restarts the killed one.
int Failover(const std::string& authority_bin, const std::string& etcd_endpoints, int rounds);

}  // namespace latchkey::bench

#endif  // LATCHKEY_BENCH_CLUSTER_BENCH_H_
