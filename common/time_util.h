// Conversions between absl::Time and google.protobuf.Timestamp / Duration.
#ifndef LATCHKEY_COMMON_TIME_UTIL_H_
#define LATCHKEY_COMMON_TIME_UTIL_H_

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"

namespace latchkey {

// The wall clock as the kernel last stamped it (CLOCK_REALTIME_COARSE): at
// most one tick (a few milliseconds) behind, and a few nanoseconds to read
// where absl::Now() can cost as much as a SHA-256 on a virtual machine. For
// timestamps that need no better, such as when a key was last used.
absl::Time CoarseNow();

inline google::protobuf::Timestamp ToProto(absl::Time t) {
  const int64_t micros = absl::ToUnixMicros(t);
  google::protobuf::Timestamp ts;
  ts.set_seconds(micros / 1000000);
  ts.set_nanos(static_cast<int32_t>((micros % 1000000) * 1000));
  if (ts.nanos() < 0) {
    ts.set_seconds(ts.seconds() - 1);
    ts.set_nanos(ts.nanos() + 1000000000);
  }
  return ts;
}

// Within google.protobuf.Timestamp's range (years 1 to 9999, nanos 0 to
// 999999999), so it converts and prints as JSON. An unset time (zero) is.
inline bool IsValidTimestamp(const google::protobuf::Timestamp& t) {
  constexpr int64_t kMinSeconds = -62135596800;  // 0001-01-01T00:00:00Z
  constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31T23:59:59Z
  return t.seconds() >= kMinSeconds && t.seconds() <= kMaxSeconds && t.nanos() >= 0 &&
         t.nanos() <= 999999999;
}

inline absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

inline google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out.set_seconds(nanos / 1000000000);
  out.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return out;
}

inline absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// "2026-12-03T00:00:00Z": UTC, whole seconds.
std::string FormatRfc3339(absl::Time t);

// A duration as people type it: absl's units ("500ms", "30s", "1h30m") plus
// whole days ("30d"). nullopt for anything else.
std::optional<absl::Duration> ParseDuration(std::string_view text);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_TIME_UTIL_H_
