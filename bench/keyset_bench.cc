// The sidecar's in-process check, against a bare hash-set lookup of the same
// digests (the floor any design pays), from 1k keys up to --max_keys (1M by
// default; scripts/bench passes 10M in a full run).
//
//   baseline_flat_hash_set  absl::flat_hash_set<Digest>::contains
//   baseline_memory_latency one dependent read at a random place in a block
//                           of memory the size of the key table (32 bytes per
//                           key, in huge pages like it): the floor of any
//                           check whose table does not fit in cache
//   keyset_lookup           KeySet::Lookup: epoch guard, probe under the
//                           sequence check, verdict
//   keyset_whole_check      KeySet::Validate: format + checksum, SHA-256, lookup
//   keyset_load             building the set from snapshot entries and
//                           swapping it in (one iteration), with the
//                           resident bytes the set adds per key as a counter
//
// Queries walk a random sample of keys, so large sets pay their cache misses.
// Keys come 50 to a project, as `latchkey-bench load` makes them (a project
// holds at most 50 active keys).
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <random>

#include "absl/container/flat_hash_set.h"
#include "absl/time/clock.h"
#include "common/key_format.h"
#include "sidecar/key_set.h"

namespace latchkey {
namespace {

constexpr size_t kQueries = 1 << 16;
constexpr size_t kKeysPerProject = 50;

// Digests are uniformly random: their first 8 bytes are a good hash.
struct DigestHash {
  size_t operator()(const Digest& d) const {
    uint64_t h;
    std::memcpy(&h, d.data(), sizeof(h));
    return static_cast<size_t>(h);
  }
};

struct Fixture {
  KeySet keys;
  absl::flat_hash_set<Digest, DigestHash> baseline;
  // Queries sit contiguously, as request buffers do; not as 64k scattered
  // heap strings, which would charge each check a cache miss to read its input.
  std::vector<std::array<char, kKeyLength>> hit_keys, miss_keys;
  std::vector<Digest> hit_digests, miss_digests;
  double load_seconds = 0;
  double bytes_per_key = 0;
};

// The process's resident bytes (the table is mmapped, not malloc'd).
size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

const Fixture& Get(size_t n) {
  static std::map<size_t, std::unique_ptr<Fixture>> fixtures;
  std::unique_ptr<Fixture>& f = fixtures[n];
  if (f) return *f;
  f = std::make_unique<Fixture>();
  // The digests and ids first, so that the load below times only the set.
  std::vector<Digest> digests(n);
  std::vector<std::string> key_ids(n);
  std::vector<std::string> hits;
  std::mt19937_64 rng(42);
  std::vector<std::string> projects(n / kKeysPerProject + 1);
  for (std::string& p : projects) p = GenerateProjectId();
  for (size_t i = 0; i < n; ++i) {
    const std::string value = GenerateKey(i % 2 == 0 ? v1::API_KEY : v1::SECRET_KEY);
    digests[i] = Sha256(value);
    key_ids[i] = GenerateKeyId();
    // A uniform sample of the keys to query (all of them for small sets).
    if (hits.size() < kQueries) {
      hits.push_back(value);
    } else if (const size_t j = rng() % (i + 1); j < kQueries) {
      hits[j] = value;
    }
  }

  const size_t resident_before = ResidentBytes();
  const auto start = std::chrono::steady_clock::now();
  {
    KeySet::Builder builder;
    v1::KeyEntry e;
    e.set_state(v1::KEY_STATE_ACTIVE);
    for (size_t i = 0; i < n; ++i) {
      e.set_project_id(projects[i / kKeysPerProject]);
      e.set_digest(digests[i].data(), digests[i].size());
      e.set_key_id(key_ids[i]);
      e.set_kind(i % 2 == 0 ? v1::API_KEY : v1::SECRET_KEY);
      if (!builder.Add(e).ok()) std::abort();
    }
    f->keys.Replace(builder);
  }
  f->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  malloc_trim(0);  // the builder's slabs go back to the kernel, as the sidecar does
  f->bytes_per_key =
      static_cast<double>(ResidentBytes() - resident_before) / static_cast<double>(n);

  for (const Digest& d : digests) f->baseline.insert(d);
  for (size_t i = 0; i < kQueries; ++i) {
    const std::string& hit = hits[rng() % hits.size()];
    const std::string miss = GenerateKey(v1::API_KEY);
    std::copy(hit.begin(), hit.end(), f->hit_keys.emplace_back().begin());
    std::copy(miss.begin(), miss.end(), f->miss_keys.emplace_back().begin());
    f->hit_digests.push_back(Sha256(hit));
    f->miss_digests.push_back(Sha256(miss));
  }
  return *f;
}

void BaselineFlatHashSet(benchmark::State& state) {
  const Fixture& f = Get(state.range(0));
  const auto& digests = state.range(1) ? f.hit_digests : f.miss_digests;
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.baseline.contains(digests[i++ & (kQueries - 1)]));
  }
}

// A random cyclic walk over one 32-byte slot per key: each read's address
// comes from the previous read, as a lookup's comes from the SHA-256.
void BaselineMemoryLatency(benchmark::State& state) {
  const size_t n = std::max<size_t>(static_cast<size_t>(state.range(0)) * 2, 64);
  const size_t bytes = n * 32;
  void* raw = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) std::abort();
  madvise(raw, bytes, MADV_HUGEPAGE);
  auto* next = static_cast<uint64_t*>(raw);  // slot i's first word: the next slot
  std::vector<uint64_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::shuffle(order.begin() + 1, order.end(), std::mt19937_64(7));
  for (size_t i = 0; i < n; ++i) next[order[i] * 4] = order[(i + 1) % n] * 4;
  uint64_t at = 0;
  for (auto _ : state) {
    at = next[at];
    benchmark::DoNotOptimize(at);
  }
  munmap(raw, bytes);
}

void KeySetLookup(benchmark::State& state) {
  const Fixture& f = Get(state.range(0));
  const auto& digests = state.range(1) ? f.hit_digests : f.miss_digests;
  const absl::Time now = absl::Now();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.keys.Lookup(digests[i++ & (kQueries - 1)], v1::API_KEY, now));
  }
}

void KeySetWholeCheck(benchmark::State& state) {
  const Fixture& f = Get(state.range(0));
  const auto& keys = state.range(1) ? f.hit_keys : f.miss_keys;
  size_t i = 0;
  for (auto _ : state) {
    // The clock is read inside, for keys with an expiry time (none here).
    const auto& key = keys[i++ & (kQueries - 1)];
    benchmark::DoNotOptimize(f.keys.Validate(std::string_view(key.data(), key.size())));
  }
}

void KeySetLoad(benchmark::State& state) {
  const Fixture& f = Get(state.range(0));
  for (auto _ : state) {
    state.SetIterationTime(f.load_seconds);
  }
  state.counters["load_s"] = f.load_seconds;
  state.counters["bytes_per_key"] = f.bytes_per_key;
}

}  // namespace
}  // namespace latchkey

// --max_keys=N (default 1000000): the largest set measured, in steps of 100x
// from 1,000 plus N itself.
int main(int argc, char** argv) {
  int64_t max_keys = 1000000;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--max_keys=", 11) == 0) {
      max_keys = std::atoll(argv[i] + 11);
    } else {
      args.push_back(argv[i]);
    }
  }
  int args_count = static_cast<int>(args.size());
  benchmark::Initialize(&args_count, args.data());
  std::vector<int64_t> sizes;
  for (int64_t n = 1000; n < max_keys; n *= 100) sizes.push_back(n);
  if (max_keys >= 1000000 && sizes.back() != 1000000) sizes.push_back(1000000);
  if (sizes.empty() || sizes.back() != max_keys) sizes.push_back(max_keys);
  auto apply = [&](benchmark::internal::Benchmark* b) {
    for (int64_t n : sizes) {
      for (int64_t hit : {1, 0}) b->Args({n, hit});
    }
    b->ArgNames({"keys", "hit"});
  };
  using namespace latchkey;
  apply(benchmark::RegisterBenchmark("baseline_flat_hash_set", BaselineFlatHashSet));
  auto* memory = benchmark::RegisterBenchmark("baseline_memory_latency", BaselineMemoryLatency);
  for (int64_t n : sizes) memory->Args({n});
  memory->ArgNames({"keys"});
  apply(benchmark::RegisterBenchmark("keyset_lookup", KeySetLookup));
  apply(benchmark::RegisterBenchmark("keyset_whole_check", KeySetWholeCheck));
  auto* load = benchmark::RegisterBenchmark("keyset_load", KeySetLoad);
  for (int64_t n : sizes) load->Args({n});
  load->ArgNames({"keys"})->Iterations(1)->UseManualTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
