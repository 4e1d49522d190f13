#include "bench/support.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/files.h"
#include "common/key_format.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace latchkey::bench {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::shared_ptr<grpc::Channel> OwnChannel(const std::string& target, int id) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("latchkey.bench.connection", id);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

std::unique_ptr<grpc::ClientContext> Admin::Ctx() const {
  auto c = std::make_unique<grpc::ClientContext>();
  c->AddMetadata("authorization", "Bearer " + token);
  return c;
}

namespace {

// The temporary directories this process made, removed when it exits: a full
// run makes hundreds, and a 1M-key store or an etcd member is hundreds of MB.
class TempDirs {
 public:
  ~TempDirs() {
    std::error_code ignored;
    for (const std::string& dir : dirs_) std::filesystem::remove_all(dir, ignored);
  }
  std::string Make() {
    std::string dir = (std::filesystem::temp_directory_path() / "latchkey-bench-XXXXXX").string();
    if (mkdtemp(dir.data()) == nullptr) std::abort();
    std::lock_guard<std::mutex> lock(mu_);
    dirs_.push_back(dir);
    return dir;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> dirs_;
};

}  // namespace

std::string TempDataDir(const char* what) {
  static TempDirs dirs;
  return dirs.Make() + "/" + what;
}

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * (v.size() - 1))];
}

long ResidentKiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

bool Serving(const std::string& address) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  grpc::health::v1::HealthCheckResponse resp;
  return stub->Check(&ctx, {}, &resp).ok() &&
         resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

double CpuSeconds(pid_t pid) {
  // The process's CPU clock counts nanoseconds, all its threads, and those
  // that have exited; /proc's utime and stime count 10 ms ticks, coarse
  // against the few hundred milliseconds a short run spends.
  clockid_t clock;
  timespec ts;
  if (clock_getcpuclockid(pid, &clock) == 0 && clock_gettime(clock, &ts) == 0) {
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  }
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  const std::string stat((std::istreambuf_iterator<char>(file)), {});
  // Fields count from 1; the command (2) may hold spaces, so start after it:
  // utime and stime are fields 14 and 15.
  std::istringstream fields(stat.substr(stat.rfind(')') + 1));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double CpuSeconds(const std::vector<pid_t>& pids) {
  double sum = 0;
  for (pid_t pid : pids) sum += CpuSeconds(pid);
  return sum;
}

double ThreadCpuSeconds(pid_t pid, const std::string& name) {
  double sum = 0;
  std::error_code error;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", error)) {
    std::ifstream comm(task.path() / "comm");
    std::string thread;
    if (!std::getline(comm, thread) || thread != name) continue;
    std::ifstream schedstat(task.path() / "schedstat");
    uint64_t on_cpu_ns = 0;
    if (schedstat >> on_cpu_ns) sum += static_cast<double>(on_cpu_ns) * 1e-9;
  }
  return sum;
}

pid_t StartProcess(std::vector<std::string> args) {
  // Built before the fork: the child of a threaded process only execs.
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (pid < 0) {
    // Never hand back -1: kill(-1, ...) would signal every process we own.
    std::perror("fork");
    std::exit(1);
  }
  return pid;
}

pid_t StartServerProcess(std::vector<std::string> args, const std::string& address) {
  const pid_t pid = StartProcess(args);
  for (const auto deadline = Clock::now() + std::chrono::seconds(30); !Serving(address);) {
    if (Clock::now() > deadline) {
      std::fprintf(stderr, "%s on %s did not start\n", args[0].c_str(), address.c_str());
      std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pid;
}

pid_t StartAuthorityProcess(const std::string& bin, const std::string& address,
                            const std::vector<std::string>& flags) {
  std::vector<std::string> args = {bin, "--listen=" + address,
                                   "--metrics-listen=", "--log-level=error"};
  args.insert(args.end(), flags.begin(), flags.end());
  return StartServerProcess(std::move(args), address);
}

Shared MakeShared() {
  const std::string dir = TempDataDir("etcd");
  std::filesystem::create_directories(dir);
  Shared shared{dir + "/master.key", dir + "/bootstrap.token", GenerateToken()};
  std::string key(32, '\0');
  for (char& c : key) c = static_cast<char>(RandomBase62(1)[0]);
  if (!WritePrivateFile(shared.master_key_file, key).ok() ||
      !WritePrivateFile(shared.token_file, shared.token + "\n").ok()) {
    std::abort();
  }
  return shared;
}

std::vector<std::string> EtcdFlags(const Shared& shared, const std::string& endpoints) {
  return {"--store=etcd", "--etcd-endpoints=" + endpoints,
          "--etcd-prefix=/bench-" + RandomBase62(12) + "/",
          "--master-key-file=" + shared.master_key_file,
          "--bootstrap-token-file=" + shared.token_file};
}

AuthorityProcess StartFreshAuthority(const std::string& bin, const std::string& etcd_endpoints,
                                     std::vector<std::string> flags) {
  AuthorityProcess p;
  p.address = "127.0.0.1:" + std::to_string(PickFreePort());
  if (etcd_endpoints.empty()) {
    const std::string data_dir = TempDataDir("authority");
    flags.push_back("--data-dir=" + data_dir);
    p.pid = StartAuthorityProcess(bin, p.address, flags);
    p.token = *ReadTokenFile(data_dir + "/admin.token");
  } else {
    const Shared shared = MakeShared();
    for (std::string& flag : EtcdFlags(shared, etcd_endpoints)) flags.push_back(std::move(flag));
    p.pid = StartAuthorityProcess(bin, p.address, flags);
    p.token = shared.token;
  }
  return p;
}

}  // namespace latchkey::bench
