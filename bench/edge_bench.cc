#include "bench/edge_bench.h"

#include <time.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "common/files.h"
#include "latchkey/edge.h"

namespace latchkey::bench {
namespace {

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

int Edge(const std::string& authority, const std::string& token_file, const std::string& keys_file,
         double seconds) {
  std::vector<std::pair<edge::Verdict, std::string>> keys;
  std::ifstream in(keys_file);
  for (std::string verdict, key; in >> verdict >> key;) {
    keys.emplace_back(verdict == "VALID" ? edge::Verdict::kValid : edge::Verdict::kRevoked, key);
  }
  absl::StatusOr<std::string> token = ReadTokenFile(token_file);
  if (keys.empty() || !token.ok()) {
    std::fprintf(stderr, "edge: no keys in %s or no token\n", keys_file.c_str());
    return 2;
  }
  edge::Options options;
  options.authority = authority;
  options.token = *token;
  options.client_id = "bench-edge";
  absl::StatusOr<std::unique_ptr<edge::Validator>> v = edge::Validator::Start(options);
  if (!v.ok() || !(*v)->WaitUntilFresh(absl::Seconds(10))) {
    std::fprintf(stderr, "edge: could not follow %s\n", authority.c_str());
    return 1;
  }
  // One thread, calls back to back: calls per second of one core.
  uint64_t calls = 0, wrong = 0;
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = ThreadCpuSeconds();
  const auto end = start + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 1000; ++i, ++calls) {
      const auto& [want, key] = keys[calls % keys.size()];
      if ((*v)->Validate(key).verdict != want) ++wrong;
    }
  }
  const double cpu = ThreadCpuSeconds() - cpu_start;
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "{\"bench\":\"edge\",\"calls\":%llu,\"calls_per_s\":%.0f,\"calls_per_cpu_s\":%.0f,"
      "\"wrong_verdicts\":%llu}\n",
      static_cast<unsigned long long>(calls), static_cast<double>(calls) / wall,
      static_cast<double>(calls) / cpu, static_cast<unsigned long long>(wrong));
  return wrong == 0 ? 0 : 1;
}

}  // namespace latchkey::bench
