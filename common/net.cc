#include "common/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/mutex.h"

namespace latchkey {

bool IsUnixAddress(std::string_view listen) { return listen.starts_with("unix:"); }

bool IsLocalAddress(std::string_view listen) {
  if (IsUnixAddress(listen)) return true;
  absl::StatusOr<HostPort> hp = SplitHostPort(listen, "address");
  return hp.ok() && IsLoopbackHost(hp->host);
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  // A literal address, parsed: "127.example.com" is a name, not loopback.
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

absl::StatusOr<HostPort> SplitHostPort(std::string_view address, std::string_view flag) {
  const size_t colon = address.rfind(':');
  HostPort hp;
  if (colon == std::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(absl::string_view(address.data() + colon + 1, address.size() - colon - 1),
                        &hp.port) ||
      hp.port < 0 || hp.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(absl::string_view(flag.data(), flag.size()), " must be host:port, got ",
                     absl::string_view(address.data(), address.size())));
  }
  hp.host = std::string(address.substr(0, colon));
  if (hp.host.size() > 1 && hp.host.front() == '[' && hp.host.back() == ']') {
    hp.host = hp.host.substr(1, hp.host.size() - 2);
  }
  return hp;
}

absl::StatusOr<std::string> ClientTarget(std::string_view addresses, std::string_view flag) {
  if (addresses.find(',') == std::string_view::npos) return std::string(addresses);
  std::string v4 = "ipv4:", v6 = "ipv6:";
  bool all_v4 = true, all_v6 = true;
  for (;;) {
    const size_t comma = addresses.find(',');
    const std::string_view one = addresses.substr(0, comma);
    absl::StatusOr<HostPort> hp = SplitHostPort(one, flag);
    if (!hp.ok()) return hp.status();
    in_addr a4{};
    in6_addr a6{};
    all_v4 = all_v4 && inet_pton(AF_INET, hp->host.c_str(), &a4) == 1;
    all_v6 = all_v6 && inet_pton(AF_INET6, hp->host.c_str(), &a6) == 1;
    if (!all_v4 && !all_v6) {
      return absl::InvalidArgumentError(absl::StrCat(
          absl::string_view(flag.data(), flag.size()),
          ": several addresses must all be IPv4 or all IPv6 literals (for names, give one DNS "
          "name with several records), got ",
          absl::string_view(one.data(), one.size())));
    }
    const std::string sep = v4.size() > 5 ? "," : "";
    v4 += sep + std::string(one);
    v6 += sep + std::string(one);
    if (comma == std::string_view::npos) break;
    addresses.remove_prefix(comma + 1);
  }
  return all_v4 ? v4 : v6;
}

absl::StatusOr<std::vector<std::string>> ParseEndpoints(std::string_view list) {
  std::vector<std::string> endpoints;
  for (;;) {
    const size_t comma = list.find(',');
    const std::string_view e = list.substr(0, comma);
    if (e.empty()) return absl::InvalidArgumentError("an empty endpoint in the list");
    endpoints.emplace_back(e);
    if (comma == std::string_view::npos) return endpoints;
    list.remove_prefix(comma + 1);
  }
}

int EphemeralPortsStart() {
  int first = 32768;  // Linux's default
  if (FILE* range = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(range, "%d", &first) != 1) first = 32768;
    std::fclose(range);
  }
  return first;
}

namespace {

// Reserves `port` among the processes on this machine that pick ports here
// (tests run in parallel, each with servers of its own): a lock on a file
// named after it, which the kernel lets go when this process exits, however
// it ends. False when another process holds it.
bool Reserve(int port) {
  static const std::string* dir = [] {
    auto* d = new std::string(std::filesystem::temp_directory_path() / "latchkey-ports");
    mkdir(d->c_str(), 0777);
    return d;
  }();
  const int fd =
      open((*dir + "/" + std::to_string(port)).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return true;  // cannot coordinate: the bind check alone decides
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return false;
  }
  return true;  // the descriptor stays open: the reservation lasts this process's life
}

}  // namespace

int PickFreePort() {
  // Not from the kernel's ephemeral range: any process's outgoing connection
  // may take such a port as its own between the pick and the server's bind
  // (on loopback even a client connecting to that very port, which then
  // connects to itself). Below it, only a server that binds the port
  // explicitly can take it. The kernel may hand a port just closed out
  // again, so every port given is remembered: two servers of one test never
  // get the same one; and reserved (Reserve): two test processes running
  // at once never get the same one either.
  constexpr int kFirst = 10000;
  static Mutex mu;
  static std::set<int>* given = new std::set<int>();
  static std::mt19937* random = new std::mt19937(std::random_device{}());
  MutexLock lock(&mu);
  const int end = EphemeralPortsStart();
  for (int attempt = 0; end - kFirst > 1000 && attempt < 10000; ++attempt) {
    const int port = kFirst + static_cast<int>((*random)() % static_cast<unsigned>(end - kFirst));
    if (given->contains(port) || !Reserve(port)) continue;
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) break;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    if (bound) {
      given->insert(port);
      return port;
    }
  }
  std::fprintf(stderr, "no free loopback port below %d\n", end);
  std::abort();
}

}  // namespace latchkey
