#include "common/metrics.h"

#include <httplib.h>

#include <cmath>
#include <sstream>
#include <variant>

#include "common/http.h"
#include "common/net.h"
#include "common/strings.h"

namespace latchkey {
namespace {

std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string LabelText(const Labels& labels, const std::string& extra = "") {
  if (labels.empty() && extra.empty()) return "";
  std::string s = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) s += ",";
    s += labels[i].first + "=\"" + Escape(labels[i].second) + "\"";
  }
  if (!extra.empty()) s += (labels.empty() ? "" : ",") + extra;
  return s + "}";
}

Labels Zip(const std::vector<std::string>& names, const std::vector<std::string>& values) {
  Labels labels;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    labels.emplace_back(names[i], values[i]);
  }
  return labels;
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double value, uint64_t count) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  buckets_[i].fetch_add(count, std::memory_order_relaxed);
  count_.fetch_add(count, std::memory_order_relaxed);
  sum_nanos_.fetch_add(static_cast<uint64_t>(std::max(0.0, value) * 1e9) * count,
                       std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::Cumulative() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

double Histogram::sum() const { return sum_nanos_.load(std::memory_order_relaxed) / 1e9; }

std::vector<double> LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   10};
}

template <typename T>
T& Registry::Family<T>::With(const std::vector<std::string>& values) {
  MutexLock lock(&mu_);
  std::unique_ptr<T>& child = children_[values];
  if (!child) child = make_();
  return *child;
}

struct Registry::Entry {
  std::string name, help, type;
  Labels labels;
  std::variant<std::monostate, Counter*, std::function<double()>, Family<Counter>*,
               Family<Histogram>*>
      source;
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Family<Counter>> counters;
  std::unique_ptr<Family<Histogram>> histograms;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Entry& Registry::Add(const std::string& name, const std::string& help, const char* type) {
  MutexLock lock(&mu_);
  Entry& e = *entries_.emplace_back(std::make_unique<Entry>());
  e.name = name;
  e.help = help;
  e.type = type;
  return e;
}

Counter& Registry::AddCounter(const std::string& name, const std::string& help, Labels labels) {
  Entry& e = Add(name, help, "counter");
  e.labels = std::move(labels);
  e.counter = std::make_unique<Counter>();
  e.source = e.counter.get();
  return *e.counter;
}

Registry::Family<Counter>& Registry::AddCounterFamily(const std::string& name,
                                                      const std::string& help,
                                                      std::vector<std::string> label_names) {
  Entry& e = Add(name, help, "counter");
  e.counters.reset(
      new Family<Counter>(std::move(label_names), [] { return std::make_unique<Counter>(); }));
  e.source = e.counters.get();
  return *e.counters;
}

Registry::Family<Histogram>& Registry::AddHistogramFamily(const std::string& name,
                                                          const std::string& help,
                                                          std::vector<std::string> label_names,
                                                          std::vector<double> bounds) {
  Entry& e = Add(name, help, "histogram");
  e.histograms.reset(new Family<Histogram>(
      std::move(label_names), [bounds] { return std::make_unique<Histogram>(bounds); }));
  e.source = e.histograms.get();
  return *e.histograms;
}

void Registry::AddGauge(const std::string& name, const std::string& help,
                        std::function<double()> read, Labels labels) {
  Entry& e = Add(name, help, "gauge");
  e.labels = std::move(labels);
  e.source = std::move(read);
}

void Registry::AddCounterFunc(const std::string& name, const std::string& help,
                              std::function<double()> read, Labels labels) {
  Entry& e = Add(name, help, "counter");
  e.labels = std::move(labels);
  e.source = std::move(read);
}

std::string Registry::Render() const {
  std::string out;
  MutexLock lock(&mu_);
  for (const std::unique_ptr<Entry>& entry : entries_) {
    const Entry& e = *entry;
    out += StrCat("# HELP ", e.name, " ", e.help, "\n# TYPE ", e.name, " ", e.type, "\n");
    if (auto* c = std::get_if<Counter*>(&e.source)) {
      out += StrCat(e.name, LabelText(e.labels), " ", (*c)->value(), "\n");
    } else if (auto* f = std::get_if<std::function<double()>>(&e.source)) {
      out += StrCat(e.name, LabelText(e.labels), " ", Number((*f)()), "\n");
    } else if (auto* cf = std::get_if<Family<Counter>*>(&e.source)) {
      MutexLock family(&(*cf)->mu_);
      for (const auto& [values, child] : (*cf)->children_) {
        out += StrCat(e.name, LabelText(Zip((*cf)->names_, values)), " ", child->value(), "\n");
      }
    } else if (auto* hf = std::get_if<Family<Histogram>*>(&e.source)) {
      MutexLock family(&(*hf)->mu_);
      for (const auto& [values, h] : (*hf)->children_) {
        const Labels labels = Zip((*hf)->names_, values);
        const std::vector<uint64_t> cumulative = h->Cumulative();
        for (size_t i = 0; i < cumulative.size(); ++i) {
          const double le = i < h->bounds().size() ? h->bounds()[i] : INFINITY;
          out += StrCat(e.name, "_bucket", LabelText(labels, "le=\"" + Number(le) + "\""), " ",
                        cumulative[i], "\n");
        }
        out += StrCat(e.name, "_sum", LabelText(labels), " ", Number(h->sum()), "\n");
        out += StrCat(e.name, "_count", LabelText(labels), " ", h->count(), "\n");
      }
    }
  }
  return out;
}

template class Registry::Family<Counter>;
template class Registry::Family<Histogram>;

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& address,
                                                                    const Registry* registry,
                                                                    bool allow_remote) {
  absl::StatusOr<HostPort> hp = SplitHostPort(address, "--metrics-listen");
  if (!hp.ok()) return hp.status();
  if (!allow_remote && !IsLocalAddress(address)) {
    return absl::InvalidArgumentError(
        "--metrics-listen " + address +
        " is beyond loopback and /metrics is plain HTTP; pass --metrics-allow-remote to serve "
        "it there anyway");
  }
  std::unique_ptr<MetricsServer> self(new MetricsServer());
  self->server_ = std::make_unique<httplib::Server>();
  self->server_->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry->Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  absl::StatusOr<int> port = Bind(self->server_.get(), *hp, address);
  if (!port.ok()) return port.status();
  self->port_ = *port;
  self->thread_ = ServeInBackground(self->server_.get());
  return self;
}

MetricsServer::~MetricsServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace latchkey
