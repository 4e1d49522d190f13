#include "common/net.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace latchkey {

bool IsUnixAddress(std::string_view listen) { return listen.starts_with("unix:"); }

bool IsLocalAddress(std::string_view listen) {
  if (IsUnixAddress(listen)) return true;
  std::string_view host = listen;
  if (host.starts_with("[")) {
    const size_t end = host.find(']');
    return end != std::string_view::npos && host.substr(1, end - 1) == "::1";
  }
  host = host.substr(0, host.rfind(':'));
  return host == "localhost" || host.starts_with("127.");
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
