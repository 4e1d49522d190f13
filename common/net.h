// Listen addresses: "host:port" for TCP or "unix:/path" for a unix socket.
#ifndef LATCHKEY_COMMON_NET_H_
#define LATCHKEY_COMMON_NET_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace latchkey {

// True for unix sockets, "localhost", and literal loopback addresses
// (127.0.0.0/8, [::1], [::ffff:127.x.y.z]). Names are never resolved, so
// "127.example.com" is not local.
bool IsLocalAddress(std::string_view listen);
// The same for a host alone (IPv6 without brackets).
bool IsLoopbackHost(const std::string& host);

// True when `listen` names a unix socket ("unix:/path" or "unix:path").
bool IsUnixAddress(std::string_view listen);

// A TCP listen address split for HTTP servers, brackets of IPv6 hosts removed.
struct HostPort {
  std::string host;
  int port = 0;  // 0 picks a free port
};

// INVALID_ARGUMENT naming `flag` unless `address` is host:port.
absl::StatusOr<HostPort> SplitHostPort(std::string_view address, std::string_view flag);

// The gRPC target for a client flag naming one server or several
// ("10.0.0.1:7700,10.0.0.2:7700"). Several must be literal IP addresses:
// the channel then connects to the first that answers and moves to another
// when it goes away (gRPC's pick_first over an ipv4:/ipv6: target). One
// address, name or not, is used as it is (a DNS name with several records
// fails over the same way). INVALID_ARGUMENT naming `flag` otherwise.
absl::StatusOr<std::string> ClientTarget(std::string_view addresses, std::string_view flag);

// "a:1,b:2" as a list of endpoints (etcd's --etcd-endpoints); INVALID_ARGUMENT
// for an empty one.
absl::StatusOr<std::vector<std::string>> ParseEndpoints(std::string_view list);

// A loopback TCP port that was free a moment ago, for servers of tests and
// benches that must be restarted on the same address. Never the same port
// twice in one process, and never one the kernel hands to outgoing
// connections (below EphemeralPortsStart).
int PickFreePort();
// The first port of the kernel's ephemeral range (ip_local_port_range).
int EphemeralPortsStart();

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_NET_H_
