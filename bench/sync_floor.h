// The floor under the fleet benchmark: what gRPC alone costs to carry a
// fleet's Sync streams.
//
// A bare server speaks just enough of KeySync.Sync and KeyAdmin.RevokeApiKey
// for `latchkey-bench fleet --floor` to run against it unchanged: each stream
// is answered with an empty snapshot's end, each revocation becomes one event
// encoded once and written to every stream, and acknowledgements are read and
// dropped. No store, no authentication, no receipts, no progress ticks. It
// gives freed memory back after a burst as the authority does
// (common/memory_release.h), so that memory per stream compares alike. The
// authority's figures over this floor's, measured in the same run, say how
// much of a stream's cost is latchkey's and how much any gRPC server pays for
// one message each way (bench/RESULTS.md, "What limits each missed goal").
#ifndef LATCHKEY_BENCH_SYNC_FLOOR_H_
#define LATCHKEY_BENCH_SYNC_FLOOR_H_

#include <string>

namespace latchkey::bench {

// Serves the floor on `address` (TCP, loopback) until the process is
// signalled; 1 when the address cannot be bound. `memory_release`: give
// freed memory back once a burst is over, checking every second.
int SyncFloor(const std::string& address, bool memory_release);

}  // namespace latchkey::bench

#endif  // LATCHKEY_BENCH_SYNC_FLOOR_H_
