// Any bytes as a secret scanning report body (authority/rpc/secret_scanning.h):
// no crash, and whatever parses holds only fields within their limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "authority/rpc/secret_scanning.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<latchkey::ReportedToken>> tokens = latchkey::ParseReport(body);
  if (!tokens.ok()) return 0;
  for (const latchkey::ReportedToken& t : *tokens) {
    if (t.token.size() > 1024 || t.url.size() > 2048 || t.type.size() > 2048 ||
        t.source.size() > 2048) {
      std::abort();
    }
    for (unsigned char c : t.token + t.url + t.type + t.source) {
      if (c < 0x20 || c == 0x7f) std::abort();
    }
  }
  return 0;
}
