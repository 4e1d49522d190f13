#include "authority/store/rocksdb/internal/rocks_status.h"

#include <cstdio>

#include "common/log.h"
#include "common/strings.h"

namespace latchkey {

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  if (s.IsNoSpace()) {
    return absl::ResourceExhaustedError(
        StrCat("the authority's data directory is out of space; writes resume once space is "
               "freed (",
               what, ": ", s.ToString(), ")"));
  }
  if (s.IsNotFound()) return absl::NotFoundError(StrCat(what, ": ", s.ToString()));
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) {
    return absl::UnavailableError(StrCat(what, ": ", s.ToString()));
  }
  if (s.IsCorruption()) return absl::DataLossError(StrCat(what, ": ", s.ToString()));
  return absl::InternalError(StrCat(what, ": ", s.ToString()));
}

void SpdlogRocksLogger::Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) {
  if (level < GetInfoLogLevel()) return;
  char line[1024];
  std::vsnprintf(line, sizeof(line), format, ap);
  switch (level) {
    case rocksdb::DEBUG_LEVEL:
    case rocksdb::INFO_LEVEL:
    case rocksdb::HEADER_LEVEL:
      spdlog::debug("rocksdb: {}", line);
      break;
    case rocksdb::WARN_LEVEL:
      spdlog::warn("rocksdb: {}", line);
      break;
    default:
      spdlog::error("rocksdb: {}", line);
      break;
  }
}

}  // namespace latchkey
