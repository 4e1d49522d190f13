// What the daemons share in main() (common/daemon.h): their flags, duration
// flags, and stop signals awaited on the main thread.
#include "common/daemon.h"

#include <pthread.h>

#include <catch2/catch.hpp>
#include <thread>

namespace latchkey {
namespace {

// Parses `args` into an app holding one duration flag, --wait, which starts
// at 30s and takes 1s to 1h. The parse error's text, or "" on success.
std::string ParseWait(const std::string& args, absl::Duration& wait) {
  CLI::App app;
  wait = absl::Seconds(30);
  AddDurationFlag(app, "--wait", wait, "how long to wait", absl::Seconds(1), absl::Hours(1));
  try {
    app.parse(args, /*program_name_included=*/false);
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return "";
}

TEST_CASE("a duration flag takes units or bare seconds, and keeps its default when absent") {
  absl::Duration wait;
  CHECK(ParseWait("", wait).empty());
  CHECK(wait == absl::Seconds(30));
  CHECK(ParseWait("--wait 1500ms", wait).empty());
  CHECK(wait == absl::Milliseconds(1500));
  CHECK(ParseWait("--wait=2m", wait).empty());
  CHECK(wait == absl::Minutes(2));
  CHECK(ParseWait("--wait 90", wait).empty());  // as before units were accepted
  CHECK(wait == absl::Seconds(90));
  CHECK(ParseWait("--wait 2.5", wait).empty());
  CHECK(wait == absl::Milliseconds(2500));
  CHECK(ParseWait("--wait 1h", wait).empty());  // the bounds are inclusive
  CHECK(wait == absl::Hours(1));
}

TEST_CASE("a duration flag outside its range, or not a duration, is refused with the range") {
  absl::Duration wait;
  for (const char* bad : {"--wait 500ms", "--wait 2h", "--wait -5", "--wait 0"}) {
    INFO(bad);
    const std::string error = ParseWait(bad, wait);
    CHECK(error.find("must be (1s to 1h)") != std::string::npos);
  }
  for (const char* bad : {"--wait soon", "--wait 5min", "--wait nan", "--wait inf", "--wait 10x"}) {
    INFO(bad);
    const std::string error = ParseWait(bad, wait);
    CHECK(error.find("takes a duration such as 500ms") != std::string::npos);
  }
}

TEST_CASE("a duration flag that 0 turns off takes 0, and otherwise only its range") {
  CLI::App app;
  absl::Duration every = absl::Seconds(1);
  AddDurationFlag(app, "--every", every, "how often", absl::Milliseconds(100), absl::Minutes(10),
                  /*zero_turns_off=*/true);
  CHECK(app.help().find("how often (0: off, or 100ms to 10m)") != std::string::npos);
  app.parse("--every 0", /*program_name_included=*/false);
  CHECK(every == absl::ZeroDuration());
  app.parse("--every 250ms", /*program_name_included=*/false);
  CHECK(every == absl::Milliseconds(250));
  for (const char* bad : {"--every 1ms", "--every 20m", "--every -1"}) {
    INFO(bad);
    CHECK_THROWS_WITH(app.parse(bad, /*program_name_included=*/false),
                      Catch::Contains("must be (0: off, or 100ms to 10m)"));
  }
}

TEST_CASE("a duration flag's help shows its default and range") {
  CLI::App app;
  absl::Duration wait = absl::Milliseconds(250);
  AddDurationFlag(app, "--wait", wait, "how long to wait", absl::Milliseconds(10),
                  absl::Minutes(5));
  const std::string help = app.help();
  CHECK(help.find("how long to wait (10ms to 5m)") != std::string::npos);
  CHECK(help.find("250ms") != std::string::npos);
}

TEST_CASE("daemon flags: metrics keep their default address, and an empty one turns them off") {
  auto parse = [](const std::string& args, ListenOptions& listen, DaemonFlags& flags) {
    CLI::App app;
    flags.metrics_listen = "127.0.0.1:9090";
    AddDaemonFlags(app, listen, flags);
    app.parse(args, /*program_name_included=*/false);
  };
  ListenOptions listen;
  DaemonFlags flags;
  parse("", listen, flags);
  CHECK(flags.metrics_listen == "127.0.0.1:9090");
  CHECK_FALSE(flags.metrics_allow_remote);
  CHECK_FALSE(listen.allow_insecure_remote);
  CHECK(flags.log_format == "text");
  CHECK(flags.log_level == "info");

  parse("--metrics-listen=", listen, flags);
  CHECK(flags.metrics_listen.empty());

  parse(
      "--metrics-listen 0.0.0.0:9100 --metrics-allow-remote --allow-insecure-remote "
      "--log-format json --log-level debug",
      listen, flags);
  CHECK(flags.metrics_listen == "0.0.0.0:9100");
  CHECK(flags.metrics_allow_remote);
  CHECK(listen.allow_insecure_remote);
  CHECK(flags.log_format == "json");
  CHECK(flags.log_level == "debug");
}

bool Blocked(int sig) {
  sigset_t now;
  pthread_sigmask(SIG_BLOCK, nullptr, &now);
  return sigismember(&now, sig) == 1;
}

TEST_CASE(
    "stop signals are blocked for later threads and awaited on the thread that blocked them") {
  sigset_t before;
  pthread_sigmask(SIG_BLOCK, nullptr, &before);
  const sigset_t signals = BlockStopSignals();
  CHECK(Blocked(SIGINT));
  CHECK(Blocked(SIGTERM));
  CHECK_FALSE(Blocked(SIGHUP));
  bool blocked_in_thread = false;
  std::thread([&] { blocked_in_thread = Blocked(SIGINT) && Blocked(SIGTERM); }).join();
  CHECK(blocked_in_thread);

  // Sent to this thread only, so no other thread of the test runner can take
  // it (and end the process).
  for (int sig : {SIGTERM, SIGINT}) {
    REQUIRE(pthread_kill(pthread_self(), sig) == 0);
    CHECK(AwaitStopSignal(signals) == sig);
  }
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
}

}  // namespace
}  // namespace latchkey
