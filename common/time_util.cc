#include "common/time_util.h"

#include <time.h>

#include "absl/strings/numbers.h"

namespace latchkey {

absl::Time CoarseNow() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return absl::TimeFromTimespec(ts);
}

std::optional<absl::Duration> ParseDuration(std::string_view text) {
  const absl::string_view t(text.data(), text.size());
  int64_t days = 0;
  if (t.size() > 1 && t.back() == 'd' && absl::SimpleAtoi(t.substr(0, t.size() - 1), &days) &&
      days >= 0 && days <= 100000) {
    return absl::Hours(24 * days);
  }
  absl::Duration d;
  if (absl::ParseDuration(t, &d) && d != absl::InfiniteDuration() &&
      d != -absl::InfiniteDuration()) {
    return d;
  }
  return std::nullopt;
}

std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_sec, t, absl::UTCTimeZone());
}

}  // namespace latchkey
