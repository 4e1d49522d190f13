#include "common/daemon.h"

#include <pthread.h>

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/time_util.h"

namespace latchkey {

sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int AwaitStopSignal(const sigset_t& signals) {
  int sig = 0;
  sigwait(&signals, &sig);
  return sig;
}

void AddDaemonFlags(CLI::App& app, ListenOptions& listen, DaemonFlags& flags) {
  app.add_flag("--allow-insecure-remote", listen.allow_insecure_remote,
               "allow plaintext listeners beyond loopback");
  app.add_option("--metrics-listen", flags.metrics_listen,
                 "HTTP address for Prometheus /metrics (default " + flags.metrics_listen +
                     "); empty turns it off: --metrics-listen=")
      ->expected(0, 1)
      ->default_str("");
  app.add_flag("--metrics-allow-remote", flags.metrics_allow_remote,
               "allow --metrics-listen beyond loopback (plain HTTP; counts, never keys)");
  app.add_option("--log-format", flags.log_format, "text or json")->capture_default_str();
  app.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
}

namespace {

std::optional<absl::Duration> ParseFlagDuration(const std::string& text) {
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds) && std::isfinite(seconds)) return absl::Seconds(seconds);
  return ParseDuration(text);
}

}  // namespace

CLI::Option* AddDurationFlag(CLI::App& app, const std::string& name, absl::Duration& value,
                             const std::string& help, absl::Duration min, absl::Duration max,
                             bool zero_turns_off) {
  const std::string range =
      absl::StrCat(" (", zero_turns_off ? "0: off, or " : "", absl::FormatDuration(min), " to ",
                   absl::FormatDuration(max), ")");
  CLI::Option* opt = app.add_option_function<std::string>(
      name, [&value](const std::string& text) { value = *ParseFlagDuration(text); }, help + range);
  opt->check(CLI::Validator(
      [min, max, range, zero_turns_off](std::string& text) -> std::string {
        std::optional<absl::Duration> d = ParseFlagDuration(text);
        if (!d) return "takes a duration such as 500ms, 30s or 2m, got " + text;
        if (zero_turns_off && *d == absl::ZeroDuration()) return "";
        if (*d < min || *d > max) return "must be" + range + ", got " + text;
        return "";
      },
      "DURATION"));
  opt->default_str(absl::FormatDuration(value));
  return opt;
}

}  // namespace latchkey
