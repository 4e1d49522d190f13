// Counts every RPC by service, method and status code, and times it, through
// a gRPC server interceptor.
#ifndef LATCHKEY_AUTHORITY_RPC_RPC_METRICS_H_
#define LATCHKEY_AUTHORITY_RPC_RPC_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>

#include "common/metrics.h"

namespace latchkey {

// latchkey_rpcs_total{service,method,code} and
// latchkey_rpc_duration_seconds{service,method} in `registry`, which must
// outlive the factory and every server it is installed on. Calls to methods
// the process does not serve are counted as service="unknown",
// method="unknown".
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcMetricsInterceptor(
    Registry* registry);

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_RPC_RPC_METRICS_H_
