// Load on a Validator: closed loop (connections x in-flight calls, each sent
// as soon as the last returns) or open loop at a fixed rate, where latency is
// measured from when each call was due, so a stalled server is not hidden.
#ifndef LATCHKEY_BENCH_VALIDATE_LOAD_H_
#define LATCHKEY_BENCH_VALIDATE_LOAD_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/histogram.h"
#include "latchkey/v1/validator.pb.h"

namespace latchkey::bench {

struct KeyMix {
  double valid = 0.7, revoked = 0.1, unknown = 0.1, malformed = 0.1;
};

struct LoadOptions {
  std::string target;  // host:port or unix:/path
  int connections = 4;
  int inflight = 32;  // per connection (closed loop)
  double seconds = 5;
  double warmup_seconds = 1;
  double rate = 0;  // calls/s; 0: closed loop
  int batch = 0;    // 0: Validate; n: ValidateBatch of n keys
  KeyMix mix;
  std::string keys_file;       // lines "VALID <key>" / "REVOKED <key>" from `latchkey-bench seed`
  bool check_verdicts = true;  // false against the empty-handler baseline
};

struct LoadResult {
  double calls_per_second = 0;
  double keys_per_second = 0;
  uint64_t calls = 0;
  uint64_t errors = 0;            // RPC failures
  uint64_t wrong_verdicts = 0;    // a verdict other than the key's
  Histogram* latency = nullptr;   // owned by the caller of RunLoad
  double server_cpu_seconds = 0;  // of --server-pid over the run, when given
};

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options, Histogram& latency);

// The framework's ceiling: a Validator whose handlers do nothing, served with
// gRPC's callback API like the sidecar, or with `queue_threads` > 0 from that
// many completion queues, one thread polling each (Validate only).
int ServeEmptyValidator(const std::string& listen, int queue_threads = 0);

}  // namespace latchkey::bench

#endif  // LATCHKEY_BENCH_VALIDATE_LOAD_H_
