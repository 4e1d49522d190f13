// A latency histogram with log-linear buckets: 64 sub-buckets per power of
// two of nanoseconds (about 1.6% resolution), from 1 ns to ~584 years, in
// fixed memory. Record is lock-free; safe for concurrent use.
#ifndef LATCHKEY_BENCH_HISTOGRAM_H_
#define LATCHKEY_BENCH_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <vector>

namespace latchkey::bench {

class Histogram {
 public:
  static constexpr int kSubBits = 6;  // 64 sub-buckets per power of two
  static constexpr int kBuckets = (64 - kSubBits + 1) << kSubBits;

  void Record(uint64_t nanos) {
    counts_[Index(nanos)].fetch_add(1, std::memory_order_relaxed);
    total_.fetch_add(1, std::memory_order_relaxed);
    uint64_t prev = max_.load(std::memory_order_relaxed);
    while (nanos > prev && !max_.compare_exchange_weak(prev, nanos)) {
    }
  }

  uint64_t count() const { return total_.load(); }
  uint64_t max() const { return max_.load(); }

  // The smallest recorded value v such that a fraction `q` of values are <= v
  // (upper edge of its bucket, capped at the maximum).
  uint64_t Quantile(double q) const {
    const uint64_t n = count();
    if (n == 0) return 0;
    const uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(n - 1)) + 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i].load(std::memory_order_relaxed);
      if (seen >= rank) return std::min(UpperEdge(i), max());
    }
    return max();
  }

  // (upper edge in ns, cumulative fraction) for each non-empty bucket: a CDF.
  std::vector<std::pair<uint64_t, double>> Cdf() const {
    std::vector<std::pair<uint64_t, double>> out;
    const double n = static_cast<double>(count());
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets && n > 0; ++i) {
      const uint64_t c = counts_[i].load(std::memory_order_relaxed);
      if (c == 0) continue;
      seen += c;
      out.emplace_back(std::min(UpperEdge(i), max()), seen / n);
    }
    return out;
  }

 private:
  static int Index(uint64_t v) {
    if (v < (1u << kSubBits)) return static_cast<int>(v);
    const int msb = 63 - std::countl_zero(v);
    const int shift = msb - kSubBits;
    return ((shift + 1) << kSubBits) + static_cast<int>((v >> shift) & ((1u << kSubBits) - 1));
  }
  static uint64_t UpperEdge(int i) {
    const int group = i >> kSubBits;
    const uint64_t sub = static_cast<uint64_t>(i & ((1 << kSubBits) - 1));
    if (group == 0) return sub;
    const int shift = group - 1;
    return (((1ull << kSubBits) + sub + 1) << shift) - 1;
  }

  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> total_{0};
  std::atomic<uint64_t> max_{0};
};

}  // namespace latchkey::bench

#endif  // LATCHKEY_BENCH_HISTOGRAM_H_
