// Small file helpers for secrets written by the daemons (master key, tokens).
#ifndef LATCHKEY_COMMON_FILES_H_
#define LATCHKEY_COMMON_FILES_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace latchkey {

// The whole file, or an empty string when it does not exist.
absl::StatusOr<std::string> ReadFileIfExists(const std::string& path);

// Writes `contents` to a new file readable by its owner only (0600), through a
// temporary file, fsync and rename, so a crash never leaves half a secret.
absl::Status WritePrivateFile(const std::string& path, std::string_view contents);

// Reads a token file and strips surrounding whitespace. NOT_FOUND when absent.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_FILES_H_
