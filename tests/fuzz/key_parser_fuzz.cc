// Any bytes through the key and token parsers: no crash, and whatever parses
// really has the documented shape and checksum.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/key_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(data), size);
  const latchkey::v1::KeyKind kind = latchkey::ParseKey(s);
  if (kind != latchkey::v1::KEY_KIND_UNSPECIFIED) {
    if (s.size() != latchkey::kKeyLength) std::abort();
    if (latchkey::Checksum(s.substr(0, latchkey::kKeyLength - latchkey::kChecksumChars)) !=
        s.substr(latchkey::kKeyLength - latchkey::kChecksumChars)) {
      std::abort();
    }
    if (latchkey::KeyHint(s).empty()) std::abort();
  }
  (void)latchkey::IsWellFormedToken(s);
  (void)latchkey::IsWellFormedId(s, latchkey::kKeyIdPrefix, latchkey::kKeyIdRandomChars);
  return 0;
}
