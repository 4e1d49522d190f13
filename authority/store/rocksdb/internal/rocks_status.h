// RocksDB's statuses and log lines, in latchkey's terms.
#ifndef LATCHKEY_AUTHORITY_STORE_ROCKSDB_INTERNAL_ROCKS_STATUS_H_
#define LATCHKEY_AUTHORITY_STORE_ROCKSDB_INTERNAL_ROCKS_STATUS_H_

#include <rocksdb/env.h>
#include <rocksdb/status.h>

#include <cstdarg>
#include <string_view>

#include "absl/status/status.h"

namespace latchkey {

// `s` as a Status saying what failed: RESOURCE_EXHAUSTED for a full disk
// (writes resume once space is freed), UNAVAILABLE for what may pass,
// DATA_LOSS for corruption.
absl::Status FromRocks(const rocksdb::Status& s, std::string_view what);

// RocksDB's own messages go to our log, not to a LOG file in the data
// directory: a LOG file that once failed to write (a full disk) makes
// RocksDB's later log calls abort in builds with assertions.
class SpdlogRocksLogger final : public rocksdb::Logger {
 public:
  explicit SpdlogRocksLogger(rocksdb::InfoLogLevel level) : rocksdb::Logger(level) {}

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override { Logv(rocksdb::INFO_LEVEL, format, ap); }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_STORE_ROCKSDB_INTERNAL_ROCKS_STATUS_H_
