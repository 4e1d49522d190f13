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

// Writes `contents` to a file readable by its owner only (0600), through a
// temporary file (created fresh: a link planted there is not followed),
// fsync, rename and an fsync of the directory, so a crash leaves either the
// old file or the whole new one.
absl::Status WritePrivateFile(const std::string& path, std::string_view contents);

// Reads a file that holds a secret of this process (the master key). An
// empty string when it does not exist; FAILED_PRECONDITION when it is a
// link, not a regular file, or readable or writable by anyone but its owner.
absl::StatusOr<std::string> ReadPrivateFile(const std::string& path);

// Reads a token file and strips surrounding whitespace. NOT_FOUND when absent.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_FILES_H_
