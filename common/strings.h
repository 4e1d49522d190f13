// String building that accepts std::string_view.
//
// Debian's Abseil 20220623 is built with ABSL_OPTION_USE_STD_STRING_VIEW=0:
// absl::string_view is its own class, and absl::StrCat / absl::StartsWith do
// not take std::string_view. Our code uses std::string_view throughout, so it
// concatenates with this instead and uses std::string_view::starts_with.
#ifndef LATCHKEY_COMMON_STRINGS_H_
#define LATCHKEY_COMMON_STRINGS_H_

#include <fmt/format.h>

#include <iterator>
#include <string>

namespace latchkey {

// Concatenates the text form of each argument (strings, views, numbers).
template <typename... Args>
std::string StrCat(const Args&... args) {
  std::string out;
  (fmt::format_to(std::back_inserter(out), "{}", args), ...);
  return out;
}

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_STRINGS_H_
