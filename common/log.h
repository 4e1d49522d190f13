// Logging: one line per event on stderr, as text or JSON. Never pass a key
// value or token to a log call; name keys by id and digests by HexPrefix.
#ifndef LATCHKEY_COMMON_LOG_H_
#define LATCHKEY_COMMON_LOG_H_

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace latchkey {

// `format` is "text" or "json"; `level` one of trace, debug, info, warn,
// error. INVALID_ARGUMENT for anything else.
absl::Status InitLogging(const std::string& format, const std::string& level);

// The line format InitLogging installs: "text", or "json" (one object per
// line, every string escaped, so a caller-chosen name cannot break a line).
absl::StatusOr<std::unique_ptr<spdlog::formatter>> LogFormatter(const std::string& format);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_LOG_H_
