// The Prometheus registry on its own: the text it renders for each kind of
// metric, label escaping, histogram buckets, and the /metrics server.
#include "common/metrics.h"

#include <httplib.h>

#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

namespace latchkey {
namespace {

bool Contains(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST_CASE("counters, families and gauges render as Prometheus text with HELP and TYPE") {
  Registry r;
  Counter& plain = r.AddCounter("latchkey_things_total", "Things.");
  plain.Inc();
  plain.Inc(4);
  auto& calls = r.AddCounterFamily("latchkey_calls_total", "Calls.", {"method", "code"});
  calls.With({"Validate", "OK"}).Inc(2);
  calls.With({"Validate", "OK"}).Inc();  // the same child
  calls.With({"Revoke", "NOT_FOUND"}).Inc();
  double depth = 3;
  r.AddGauge("latchkey_depth", "Depth.", [&] { return depth; }, {{"queue", "watch"}});
  r.AddCounterFunc("latchkey_kept_total", "Kept elsewhere.", [] { return 42.0; });

  std::string text = r.Render();
  REQUIRE(Contains(text,
                   "# HELP latchkey_things_total Things.\n# TYPE latchkey_things_total counter\n"));
  REQUIRE(Contains(text, "\nlatchkey_things_total 5\n"));
  REQUIRE(Contains(text, "latchkey_calls_total{method=\"Validate\",code=\"OK\"} 3\n"));
  REQUIRE(Contains(text, "latchkey_calls_total{method=\"Revoke\",code=\"NOT_FOUND\"} 1\n"));
  REQUIRE(Contains(text, "# TYPE latchkey_depth gauge\n"));
  REQUIRE(Contains(text, "latchkey_depth{queue=\"watch\"} 3\n"));
  REQUIRE(Contains(text, "latchkey_kept_total 42\n"));
  depth = 7;  // gauges are read at scrape time
  REQUIRE(Contains(r.Render(), "latchkey_depth{queue=\"watch\"} 7\n"));
}

TEST_CASE("label values are escaped: backslash, quote and newline") {
  Registry r;
  r.AddCounterFamily("latchkey_x_total", "X.", {"v"}).With({"a\\b\"c\nd"}).Inc();
  REQUIRE(Contains(r.Render(), "latchkey_x_total{v=\"a\\\\b\\\"c\\nd\"} 1\n"));
}

TEST_CASE("histograms render cumulative buckets, +Inf, sum and count") {
  Registry r;
  auto& h = r.AddHistogramFamily("latchkey_seconds", "Latency.", {"method"}, {0.001, 0.01});
  Histogram& v = h.With({"Validate"});
  v.Observe(0.0005);
  v.Observe(0.005);
  v.Observe(0.005);
  v.Observe(5);
  REQUIRE(v.Cumulative() == std::vector<uint64_t>{1, 3, 4});
  REQUIRE(v.count() == 4);
  REQUIRE(v.sum() == Approx(5.0105));
  const std::string text = r.Render();
  REQUIRE(Contains(text, "# TYPE latchkey_seconds histogram\n"));
  REQUIRE(Contains(text, "latchkey_seconds_bucket{method=\"Validate\",le=\"0.001\"} 1\n"));
  REQUIRE(Contains(text, "latchkey_seconds_bucket{method=\"Validate\",le=\"0.01\"} 3\n"));
  REQUIRE(Contains(text, "latchkey_seconds_bucket{method=\"Validate\",le=\"+Inf\"} 4\n"));
  REQUIRE(Contains(text, "latchkey_seconds_count{method=\"Validate\"} 4\n"));
}

TEST_CASE("a histogram takes many observations of one value at once") {
  Histogram one_by_one(std::vector<double>{0.001, 0.01}), at_once(std::vector<double>{0.001, 0.01});
  for (int i = 0; i < 1000; ++i) one_by_one.Observe(0.002);
  at_once.Observe(0.002, 1000);
  REQUIRE(at_once.Cumulative() == std::vector<uint64_t>{0, 1000, 1000});
  REQUIRE(at_once.Cumulative() == one_by_one.Cumulative());
  REQUIRE(at_once.count() == 1000);
  REQUIRE(at_once.sum() == Approx(one_by_one.sum()));
  REQUIRE(at_once.sum() == Approx(2.0));
}

TEST_CASE("latency buckets run from 50 us to 10 s, ascending") {
  const std::vector<double> b = LatencyBuckets();
  REQUIRE(b.front() == Approx(50e-6));
  REQUIRE(b.back() == Approx(10));
  for (size_t i = 1; i < b.size(); ++i) REQUIRE(b[i - 1] < b[i]);
}

TEST_CASE("the metrics server answers GET /metrics with the registry's text") {
  Registry r;
  r.AddCounter("latchkey_served_total", "Served.").Inc(9);
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start("127.0.0.1:0", &r);
  REQUIRE(server.ok());
  httplib::Client client("127.0.0.1", (*server)->port());
  httplib::Result got = client.Get("/metrics");
  REQUIRE(got);
  REQUIRE(got->status == 200);
  REQUIRE(got->get_header_value("Content-Type").find("text/plain") == 0);
  REQUIRE(Contains(got->body, "latchkey_served_total 9\n"));
  REQUIRE(client.Get("/other")->status == 404);
  REQUIRE(absl::IsInvalidArgument(MetricsServer::Start("no-port", &r).status()));
}

TEST_CASE("children are created once however many threads ask", "[concurrency]") {
  Registry r;
  auto& family = r.AddCounterFamily("latchkey_race_total", "Race.", {"k"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) family.With({std::to_string(i % 10)}).Inc();
    });
  }
  for (auto& t : threads) t.join();
  const std::string text = r.Render();
  for (int k = 0; k < 10; ++k) {
    REQUIRE(Contains(text, "latchkey_race_total{k=\"" + std::to_string(k) + "\"} 400\n"));
  }
}

}  // namespace
}  // namespace latchkey

namespace latchkey {
namespace {

TEST_CASE("a /metrics listener beyond loopback is refused unless remote metrics are allowed") {
  Registry registry;
  for (const char* remote : {"0.0.0.0:0", "[::]:0", "127.example.com:0", "10.1.2.3:0"}) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> refused =
        MetricsServer::Start(remote, &registry);
    INFO(remote << ": " << refused.status());
    CHECK(absl::IsInvalidArgument(refused.status()));
    CHECK(refused.status().message().find("--metrics-allow-remote") != std::string::npos);
  }
  absl::StatusOr<std::unique_ptr<MetricsServer>> local =
      MetricsServer::Start("127.0.0.1:0", &registry);
  CHECK(local.ok());
}

}  // namespace
}  // namespace latchkey
