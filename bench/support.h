// What the benchmarks share: clocks and quantiles, fresh data dirs and
// ports, other processes (an authority's, and what any process has used of
// CPU and memory), channels that each get a connection of their own, and an
// admin client.
#ifndef LATCHKEY_BENCH_SUPPORT_H_
#define LATCHKEY_BENCH_SUPPORT_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/net.h"  // PickFreePort
#include "latchkey/v1/key_admin.grpc.pb.h"

namespace latchkey::bench {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d);
// The `q` quantile of `v` (0..1), by the nearest rank below.
double Quantile(std::vector<double> v, double q);

// A channel to `target` that shares no connection with channels of another
// `id`.
std::shared_ptr<grpc::Channel> OwnChannel(const std::string& target, int id);

// A KeyAdmin client with a bearer token.
struct Admin {
  std::unique_ptr<v1::KeyAdmin::Stub> stub;
  std::string token;
  std::unique_ptr<grpc::ClientContext> Ctx() const;
};

// A path named `what` inside a new temporary directory, which is removed
// when the process exits.
std::string TempDataDir(const char* what);
// Whether the gRPC health service at `address` answers SERVING.
bool Serving(const std::string& address);

// The resident memory of process `pid`, in KiB (-1 when unknown).
long ResidentKiB(pid_t pid);
// The CPU time (user + system) process `pid` has used so far, in seconds.
double CpuSeconds(pid_t pid);
double CpuSeconds(const std::vector<pid_t>& pids);
// CPU seconds the threads of `pid` named `name` used (from the scheduler's
// nanosecond count; a thread that exited no longer counts).
double ThreadCpuSeconds(pid_t pid, const std::string& name);

// Runs `args` (the program's path first) as a child process.
pid_t StartProcess(std::vector<std::string> args);
// StartProcess, then waits until the gRPC server it starts on `address`
// serves; exits the benchmark when it does not within 30 s.
pid_t StartServerProcess(std::vector<std::string> args, const std::string& address);

// Starts `bin` (latchkey-authority) listening on `address` with `flags`
// added, and waits until it serves.
pid_t StartAuthorityProcess(const std::string& bin, const std::string& address,
                            const std::vector<std::string>& flags);

// An authority process on a fresh loopback port, over a fresh store: an
// embedded one, or a new prefix of the etcd cluster at `etcd_endpoints`;
// `flags` are added to those.
struct AuthorityProcess {
  pid_t pid;
  std::string address;
  std::string token;  // the first ADMIN's
};
AuthorityProcess StartFreshAuthority(const std::string& bin, const std::string& etcd_endpoints,
                                     std::vector<std::string> flags = {});

// What every replica of one etcd deployment is given: a master key, and the
// first ADMIN's token.
struct Shared {
  std::string master_key_file;
  std::string token_file;
  std::string token;
};
Shared MakeShared();
// The flags of an authority process over a fresh prefix of the etcd
// cluster at `endpoints`, sharing `shared`.
std::vector<std::string> EtcdFlags(const Shared& shared, const std::string& endpoints);

}  // namespace latchkey::bench

#endif  // LATCHKEY_BENCH_SUPPORT_H_
