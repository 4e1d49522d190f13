#include "common/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace latchkey {

bool IsUnixAddress(std::string_view listen) { return listen.starts_with("unix:"); }

bool IsLocalAddress(std::string_view listen) {
  if (IsUnixAddress(listen)) return true;
  absl::StatusOr<HostPort> hp = SplitHostPort(listen, "address");
  if (!hp.ok()) return false;
  if (hp->host == "localhost") return true;
  // A literal address, parsed: "127.example.com" is a name, not loopback.
  in_addr v4{};
  if (inet_pton(AF_INET, hp->host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, hp->host.c_str(), &v6) != 1) return false;
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

}  // namespace latchkey
