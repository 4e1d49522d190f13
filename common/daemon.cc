#include "common/daemon.h"

#include <pthread.h>

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
                 "HTTP address for Prometheus /metrics; empty turns it off")
      ->capture_default_str();
  app.add_option("--log-format", flags.log_format, "text or json")->capture_default_str();
  app.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
}

}  // namespace latchkey
