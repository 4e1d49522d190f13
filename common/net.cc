#include "common/net.h"

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

}  // namespace latchkey
