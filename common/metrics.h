// Prometheus metrics: a registry rendered in the text exposition format
// (version 0.0.4), served over HTTP by MetricsServer.
//
// Counters and histograms are lock-free to update; families create a child
// per label-value tuple on first use (under a mutex) and return a reference
// that stays valid for the registry's life, so hot paths resolve their
// children once and keep the reference. Gauges and some counters are read
// through callbacks at scrape time.
//
// Everything here is safe for concurrent access from multiple threads.
#ifndef LATCHKEY_COMMON_METRICS_H_
#define LATCHKEY_COMMON_METRICS_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/mutex.h"

namespace httplib {
class Server;
}

namespace latchkey {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  // `count` observations of `value` (a batch's mean, say).
  void Observe(double value, uint64_t count = 1);
  // Cumulative counts per bound (then +Inf), count and sum.
  std::vector<uint64_t> Cumulative() const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // one per bound, then +Inf
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_nanos_{0};  // values are seconds: summed in nanoseconds
};

// Bucket bounds in seconds from 50 us to 10 s: validations sit at the low
// end, durable mutations in the middle.
std::vector<double> LatencyBuckets();

class Registry {
 public:
  template <typename T>
  class Family {
   public:
    // The child for these label values (in the order of the family's label
    // names), created on first use.
    T& With(const std::vector<std::string>& values);

   private:
    friend class Registry;
    Family(std::vector<std::string> names, std::function<std::unique_ptr<T>()> make)
        : names_(std::move(names)), make_(std::move(make)) {}
    std::vector<std::string> names_;
    std::function<std::unique_ptr<T>()> make_;
    mutable Mutex mu_;
    std::map<std::vector<std::string>, std::unique_ptr<T>> children_ ABSL_GUARDED_BY(mu_);
  };

  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Counter& AddCounter(const std::string& name, const std::string& help, Labels labels = {});
  Family<Counter>& AddCounterFamily(const std::string& name, const std::string& help,
                                    std::vector<std::string> label_names);
  Family<Histogram>& AddHistogramFamily(const std::string& name, const std::string& help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> bounds = LatencyBuckets());
  void AddGauge(const std::string& name, const std::string& help, std::function<double()> read,
                Labels labels = {});
  // A counter whose value something else keeps (read at scrape time).
  void AddCounterFunc(const std::string& name, const std::string& help,
                      std::function<double()> read, Labels labels = {});

  std::string Render() const;

 private:
  struct Entry;
  Entry& Add(const std::string& name, const std::string& help, const char* type);

  mutable Mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);  // in registration order
};

// Serves GET /metrics from a registry on its own thread.
class MetricsServer {
 public:
  // `address` is host:port (port 0 picks one). INVALID_ARGUMENT or
  // UNAVAILABLE when it cannot listen. /metrics is plain HTTP: an address
  // beyond loopback (common/net.h IsLocalAddress) is INVALID_ARGUMENT unless
  // `allow_remote` (--metrics-allow-remote).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& address,
                                                              const Registry* registry,
                                                              bool allow_remote = false);
  ~MetricsServer();
  int port() const { return port_; }

 private:
  MetricsServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_METRICS_H_
