// GitHub secret scanning reports (authority/rpc/secret_scanning.h) as GitHub
// sends them: how long the authority takes to answer a report of many
// tokens, against the same findings handled one at a time.
#ifndef LATCHKEY_BENCH_LEAK_REPORT_BENCH_H_
#define LATCHKEY_BENCH_LEAK_REPORT_BENCH_H_

#include <string>

namespace latchkey::bench {

// An authority in this process (embedded store, or a fresh prefix of the
// etcd cluster at `etcd_endpoints`) with the endpoint on, `tokens` API keys,
// and for each of `rounds`: one signed report of every key at a new URL (new
// findings: one mutation each, run concurrently), the same report again
// (lookups only), a report of as many values latchkey never issued, and the
// baseline: the same number of new findings reported one after another.
// Prints one JSON line per round.
int LeakReport(int tokens, int rounds, const std::string& etcd_endpoints);

}  // namespace latchkey::bench

#endif  // LATCHKEY_BENCH_LEAK_REPORT_BENCH_H_
