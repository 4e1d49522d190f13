// The sidecar's in-process check, against a bare hash-set lookup of the same
// digests (the floor any design pays), at 1k, 100k and 1M keys.
//
//   baseline_flat_hash_set  absl::flat_hash_set<Digest>::contains
//   keyset_lookup           KeySet::Lookup: shard lock, find, copy, verdict
//   keyset_whole_check      KeySet::Validate: format + checksum, SHA-256, lookup
//
// Queries walk a random sample of keys, so large sets pay their cache misses.
#include <benchmark/benchmark.h>

#include <array>
#include <map>
#include <random>

#include "absl/container/flat_hash_set.h"
#include "absl/time/clock.h"
#include "common/key_format.h"
#include "sidecar/key_set.h"

namespace latchkey {
namespace {

constexpr size_t kQueries = 1 << 16;

struct Fixture {
  KeySet keys;
  absl::flat_hash_set<Digest, KeySet::DigestHash> baseline;
  // Queries sit contiguously, as request buffers do; not as 64k scattered
  // heap strings, which would charge each check a cache miss to read its input.
  std::vector<std::array<char, kKeyLength>> hit_keys, miss_keys;
  std::vector<Digest> hit_digests, miss_digests;
};

const Fixture& Get(size_t n) {
  static std::map<size_t, std::unique_ptr<Fixture>> fixtures;
  std::unique_ptr<Fixture>& f = fixtures[n];
  if (f) return *f;
  f = std::make_unique<Fixture>();
  KeySet::Builder builder;
  std::vector<std::string> values;
  values.reserve(n);
  const std::string project = GenerateProjectId();
  for (size_t i = 0; i < n; ++i) {
    values.push_back(GenerateKey(i % 2 == 0 ? v1::API_KEY : v1::SECRET_KEY));
    v1::KeyEntry e;
    e.set_digest(Sha256Bytes(values.back()));
    e.set_key_id(GenerateKeyId());
    e.set_project_id(project);
    e.set_kind(ParseKey(values.back()));
    e.set_state(v1::KEY_STATE_ACTIVE);
    if (!builder.Add(e).ok()) std::abort();
    f->baseline.insert(Sha256(values.back()));
  }
  f->keys.Replace(builder);
  std::mt19937_64 rng(42);
  for (size_t i = 0; i < kQueries; ++i) {
    const std::string hit = values[rng() % n], miss = GenerateKey(v1::API_KEY);
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
    // absl::Now() is part of the check: expiry is decided by the sidecar's clock.
    const auto& key = keys[i++ & (kQueries - 1)];
    benchmark::DoNotOptimize(
        f.keys.Validate(std::string_view(key.data(), key.size()), absl::Now()));
  }
}

void Sizes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {1000, 100000, 1000000}) {
    for (int64_t hit : {1, 0}) b->Args({n, hit});
  }
  b->ArgNames({"keys", "hit"});
}

BENCHMARK(BaselineFlatHashSet)->Name("baseline_flat_hash_set")->Apply(Sizes);
BENCHMARK(KeySetLookup)->Name("keyset_lookup")->Apply(Sizes);
BENCHMARK(KeySetWholeCheck)->Name("keyset_whole_check")->Apply(Sizes);

}  // namespace
}  // namespace latchkey

BENCHMARK_MAIN();
