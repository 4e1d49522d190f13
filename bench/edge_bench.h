// In-process validation with latchkey::edge (include/latchkey/edge.h): one
// thread validating back to back, the figure to set beside a sidecar's
// Validate calls per CPU-second.
#ifndef LATCHKEY_BENCH_EDGE_BENCH_H_
#define LATCHKEY_BENCH_EDGE_BENCH_H_

#include <string>

namespace latchkey::bench {

// Follows `authority` with an edge::Validator and validates the keys of
// `keys_file` ("VALID <key>" / "REVOKED <key>" lines, `latchkey-bench seed`)
// in one thread for `seconds`; prints calls per second and per CPU-second of
// that thread, and checks every verdict.
int Edge(const std::string& authority, const std::string& token_file, const std::string& keys_file,
         double seconds);

}  // namespace latchkey::bench

#endif  // LATCHKEY_BENCH_EDGE_BENCH_H_
