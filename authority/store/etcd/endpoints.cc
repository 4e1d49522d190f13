// ParseEndpoints (etcd_store.h) on its own: every build of the authority
// parses --etcd-endpoints, including one without the etcd store, which then
// refuses --store=etcd with a reason (authority/store_factory.cc).
#include "authority/store/etcd/etcd_store.h"

namespace latchkey {

absl::StatusOr<std::vector<std::string>> ParseEndpoints(std::string_view list) {
  std::vector<std::string> endpoints;
  for (;;) {
    const size_t comma = list.find(',');
    const std::string_view e = list.substr(0, comma);
    if (e.empty()) return absl::InvalidArgumentError("an empty etcd endpoint in the list");
    endpoints.emplace_back(e);
    if (comma == std::string_view::npos) return endpoints;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace latchkey
