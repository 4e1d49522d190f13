#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace latchkey {

absl::Status InitLogging(const std::string& format, const std::string& level) {
  const spdlog::level::level_enum lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError("unknown --log-level " + level);
  }
  auto logger = spdlog::stderr_logger_mt("latchkey");
  if (format == "json") {
    // Messages are built by our own code from ids, counts and addresses; the
    // pattern escapes nothing, so callers never log quotes or user text.
    logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","thread":%t,"msg":"%v"})",
                        spdlog::pattern_time_type::utc);
  } else if (format == "text") {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %L %v", spdlog::pattern_time_type::utc);
  } else {
    return absl::InvalidArgumentError("unknown --log-format " + format);
  }
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

}  // namespace latchkey
