#include "authority/rpc_metrics.h"

#include <chrono>

#include "common/status.h"

namespace latchkey {
namespace {

struct Families {
  Registry::Family<Counter>* calls;
  Registry::Family<Histogram>* durations;
};

class Interceptor final : public grpc::experimental::Interceptor {
 public:
  Interceptor(grpc::experimental::ServerRpcInfo* info, const Families& families)
      : families_(families), start_(std::chrono::steady_clock::now()) {
    // "/latchkey.v1.KeyAdmin/CreateProject" -> "latchkey.v1.KeyAdmin", "CreateProject"
    const std::string full = info->method() != nullptr ? info->method() : "/unknown/unknown";
    const size_t slash = full.rfind('/');
    service_ = full.substr(1, slash - 1);
    method_ = full.substr(slash + 1);
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
