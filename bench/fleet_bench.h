// A fleet against one authority process: thousands of sidecars' Sync
// streams over a few connections, each kept by a lean client that holds only
// its applied revision and acknowledges each one, as a sidecar does. What
// each stream costs the authority, in figures that hold on any machine: CPU
// per revision per 1,000 streams, CPU per second at rest per 1,000 streams,
// memory per stream, and CPU per stream while the fleet starts together (each
// stream snapshots the same key set).
#ifndef LATCHKEY_BENCH_FLEET_BENCH_H_
#define LATCHKEY_BENCH_FLEET_BENCH_H_

#include <string>

namespace latchkey::bench {

struct FleetOptions {
  int streams = 1000;
  int connections = 16;  // the authority allows 1,000 streams per connection
  int revocations = 20;
  int keys = 0;                // more keys every stream's snapshot carries
  double rest_seconds = 3;     // how long the fleet is watched at rest
  std::string authority_bin;   // latchkey-authority, run as its own process
  std::string etcd_endpoints;  // empty: the embedded store
  bool floor = false;          // against bench/sync_floor.h instead of an authority
  // The server gives freed memory back once a burst is over
  // (common/memory_release.h); false: --memory-release-interval=0.
  bool memory_release = true;
};

// Prints one JSON object on stdout; 1 when a stream fails or a revocation
// does not reach every stream within 30 s.
int Fleet(const FleetOptions& options);

}  // namespace latchkey::bench

#endif  // LATCHKEY_BENCH_FLEET_BENCH_H_
