// Log lines: JSON lines stay one valid object whatever a message holds.
#include "common/log.h"

#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>

namespace latchkey {
namespace {

// Logs `message` through a logger with the given format; returns the output.
std::string LogOne(const std::string& format, const std::string& message) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
  spdlog::logger logger("test", sink);
  absl::StatusOr<std::unique_ptr<spdlog::formatter>> formatter = LogFormatter(format);
  REQUIRE(formatter.ok());
  logger.set_formatter(*std::move(formatter));
  logger.info("principal {} did it", message);
  return out.str();
}

TEST_CASE("JSON log lines escape quotes, backslashes, newlines and control characters") {
  const std::string hostile =
      GENERATE(std::string("plain"), std::string(R"(a "quoted" name)"), std::string("back\\slash"),
               std::string("two\nlines\r\t"), std::string("bell\x07 nul") + '\0' + "end",
               std::string(R"(x","level":"error)"), std::string("ünïcødé"));
  const std::string line = LogOne("json", hostile);
  INFO(line);
  REQUIRE(std::count(line.begin(), line.end(), '\n') == 1);  // one line, at the end
  const nlohmann::json parsed = nlohmann::json::parse(line);
  CHECK(parsed["msg"] == "principal " + hostile + " did it");
  CHECK(parsed["level"] == "info");
}

TEST_CASE("unknown log formats and levels are refused") {
  CHECK(absl::IsInvalidArgument(LogFormatter("xml").status()));
  CHECK(absl::IsInvalidArgument(InitLogging("text", "loud")));
  CHECK(LogOne("text", "x").find(" I principal x did it") != std::string::npos);
}

}  // namespace
}  // namespace latchkey
