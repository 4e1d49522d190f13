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

struct Families {
  Registry::Family<Counter>* calls;
  Registry::Family<Histogram>* durations;
};

class Interceptor final : public grpc::experimental::Interceptor {
 public:
  Interceptor(grpc::experimental::ServerRpcInfo* info, const Families& families)
      : families_(families), start_(std::chrono::steady_clock::now()) {
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
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      families_.calls
          ->With({service_, method_, StatusCodeName(methods->GetSendStatus().error_code())})
          .Inc();
      families_.durations->With({service_, method_}).Observe(seconds);
    }
    methods->Proceed();
  }

 private:
  const Families families_;
  const std::chrono::steady_clock::time_point start_;
  std::string service_, method_;
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(Families families) : families_(families) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new Interceptor(info, families_);
  }

 private:
  const Families families_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcMetricsInterceptor(
    Registry* registry) {
  Families f;
  f.calls = &registry->AddCounterFamily("latchkey_rpcs_total", "RPCs handled, by final status.",
                                        {"service", "method", "code"});
  f.durations = &registry->AddHistogramFamily("latchkey_rpc_duration_seconds",
                                              "Time from receiving an RPC to sending its status.",
                                              {"service", "method"});
  return std::make_unique<Factory>(f);
}

}  // namespace latchkey
