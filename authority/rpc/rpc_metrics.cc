#include "authority/rpc/rpc_metrics.h"

#include <google/protobuf/descriptor.h>

#include <chrono>

#include "common/status.h"

namespace latchkey {
namespace {

bool IsKnownMethod(const std::string& service, const std::string& method) {
  // Health is served by gRPC's own upb code, outside protobuf's pool.
  if (service == "grpc.health.v1.Health") return method == "Check" || method == "Watch";
  const google::protobuf::ServiceDescriptor* s =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
  return s != nullptr && s->FindMethodByName(method) != nullptr;
}

class CallInterceptor final : public grpc::experimental::Interceptor {
 public:
  CallInterceptor(grpc::experimental::ServerRpcInfo* info, const RpcMetrics* metrics)
      : metrics_(metrics), start_(std::chrono::steady_clock::now()) {
    // "/latchkey.v1.KeyAdmin/CreateProject" -> "latchkey.v1.KeyAdmin", "CreateProject"
    const std::string full = info->method() != nullptr ? info->method() : "";
    const size_t slash = full.rfind('/');
    if (slash != std::string::npos && slash > 1 && full[0] == '/') {
      service_ = full.substr(1, slash - 1);
      method_ = full.substr(slash + 1);
    }
    // The path is the caller's choice, token or not: only methods this
    // process has compiled in get labels of their own, so /metrics and the
    // registry stay bounded whatever strangers send.
    if (!IsKnownMethod(service_, method_)) service_ = method_ = "unknown";
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_->Count(service_, method_, methods->GetSendStatus().error_code(), start_);
    }
    methods->Proceed();
  }

 private:
  const RpcMetrics* const metrics_;
  const std::chrono::steady_clock::time_point start_;
  std::string service_, method_;
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  Factory(const RpcMetrics* metrics, std::vector<std::string> self_counted)
      : metrics_(metrics), self_counted_(std::move(self_counted)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // No interceptor at all for these: gRPC then skips its chain per message.
    const char* method = info->method() != nullptr ? info->method() : "";
    for (const std::string& m : self_counted_) {
      if (m == method) return nullptr;
    }
    return new CallInterceptor(info, metrics_);
  }

 private:
  const RpcMetrics* const metrics_;
  const std::vector<std::string> self_counted_;
};

}  // namespace

RpcMetrics::RpcMetrics(Registry* registry)
    : calls_(&registry->AddCounterFamily("latchkey_rpcs_total", "RPCs handled, by final status.",
                                         {"service", "method", "code"})),
      durations_(&registry->AddHistogramFamily("latchkey_rpc_duration_seconds",
                                               "Time from receiving an RPC to sending its status.",
                                               {"service", "method"})) {}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcMetrics::Interceptor(
    std::vector<std::string> self_counted) const {
  return std::make_unique<Factory>(this, std::move(self_counted));
}

void RpcMetrics::Count(const std::string& service, const std::string& method, grpc::StatusCode code,
                       std::chrono::steady_clock::time_point start) const {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  calls_->With({service, method, StatusCodeName(code)}).Inc();
  durations_->With({service, method}).Observe(seconds);
}

}  // namespace latchkey
