// Counts every RPC by service, method and status code, and times it: a gRPC
// server interceptor for most calls, and Count for calls whose handlers
// count themselves.
#ifndef LATCHKEY_AUTHORITY_RPC_RPC_METRICS_H_
#define LATCHKEY_AUTHORITY_RPC_RPC_METRICS_H_

#include <grpcpp/support/server_interceptor.h>
#include <grpcpp/support/status.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics.h"

namespace latchkey {

// latchkey_rpcs_total{service,method,code} and
// latchkey_rpc_duration_seconds{service,method} in `registry`, which must
// outlive this object, which must outlive every server its interceptor is
// installed on. Calls to methods the process does not serve are counted as
// service="unknown", method="unknown".
class RpcMetrics {
 public:
  explicit RpcMetrics(Registry* registry);

  // The interceptor for every call but those to `self_counted` methods
  // (full paths, "/latchkey.v1.KeySync/Sync"), whose handlers call Count.
  // Streams are best counted by their handlers: a call with an interceptor
  // runs gRPC's interceptor chain for every message each way, which cost an
  // authority about a fifth of its CPU per revision per Sync stream
  // (docs/design.md, "Sync, and Watch before it").
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> Interceptor(
      std::vector<std::string> self_counted = {}) const;

  // One finished call of `service`.`method` that started at `start`.
  void Count(const std::string& service, const std::string& method, grpc::StatusCode code,
             std::chrono::steady_clock::time_point start) const;

 private:
  Registry::Family<Counter>* calls_;
  Registry::Family<Histogram>* durations_;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_RPC_RPC_METRICS_H_
