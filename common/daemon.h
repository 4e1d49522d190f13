// What latchkey-authority and latchkey-sidecar share in main(): stop signals
// and the flags every daemon has.
#ifndef LATCHKEY_COMMON_DAEMON_H_
#define LATCHKEY_COMMON_DAEMON_H_

#include <signal.h>

#include <CLI/CLI.hpp>
#include <string>

#include "absl/time/time.h"
#include "common/grpc_server.h"

namespace latchkey {

// Blocks SIGINT and SIGTERM in this thread and every thread started after,
// so they can be awaited on the main thread instead of handled anywhere.
sigset_t BlockStopSignals();

// Waits for one of `signals` and returns it.
int AwaitStopSignal(const sigset_t& signals);

struct DaemonFlags {
  std::string metrics_listen;  // set to the daemon's default before AddDaemonFlags
  bool metrics_allow_remote = false;
  std::string log_format = "text";
  std::string log_level = "info";
};

// --allow-insecure-remote, --metrics-listen, --metrics-allow-remote,
// --log-format, --log-level.
// `--metrics-listen=` (empty) turns metrics off.
void AddDaemonFlags(CLI::App& app, ListenOptions& listen, DaemonFlags& flags);

// A duration flag that takes units ("500ms", "30s", "2m", "1h") or, as before
// units were accepted, a bare number of seconds; refused outside [min, max]
// (but for 0 when `zero_turns_off`). `value` holds the default and receives
// the parsed duration.
CLI::Option* AddDurationFlag(CLI::App& app, const std::string& name, absl::Duration& value,
                             const std::string& help, absl::Duration min, absl::Duration max,
                             bool zero_turns_off = false);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_DAEMON_H_
