#include "sidecar/server.h"

#include "absl/time/clock.h"
#include "common/log.h"
#include "common/strings.h"
#include "sidecar/validator_service.h"

namespace latchkey {

struct SidecarServer::Parts {
  Registry metrics;
  std::unique_ptr<ValidationMetrics> validation_metrics;
  std::unique_ptr<MetricsServer> metrics_server;
  std::unique_ptr<ValidatorService> validator;
  std::unique_ptr<grpc::Server> server;
};

SidecarServer::SidecarServer(SidecarOptions options)
    : options_(std::move(options)), parts_(std::make_unique<Parts>()) {}

absl::StatusOr<std::unique_ptr<SidecarServer>> SidecarServer::Start(SidecarOptions options) {
  if (options.token.empty()) return absl::InvalidArgumentError("no token for the authority");
  std::unique_ptr<SidecarServer> self(new SidecarServer(std::move(options)));
  const SidecarOptions& o = self->options_;

  EnableServerPlugins();
  grpc::ServerBuilder builder;
  if (absl::Status s = AddListeners(builder, o.listen, self->ports_); !s.ok()) return s;

  absl::StatusOr<std::unique_ptr<Follower>> follower = Follower::Start({
      .authority = o.authority,
      .authority_tls = o.authority_tls,
      .token = o.token,
      .sidecar_id = o.sidecar_id,
      .max_staleness = o.max_staleness,
      .stale_policy = o.stale_policy,
      .usage_interval = o.usage_interval,
      .state_file = o.state_file,
      .state_interval = o.state_interval,
      .on_applied = o.on_applied,
  });
  if (!follower.ok()) return follower.status();
  self->follower_ = *std::move(follower);
  Follower* f = self->follower_.get();

  ValidatorOptions validator;
  validator.max_batch = o.max_batch;
  validator.rejecting = [f] { return f->rejecting(); };
  self->parts_->validation_metrics = std::make_unique<ValidationMetrics>(self->parts_->metrics);
  f->AddMetrics(self->parts_->metrics);
  self->parts_->validator = std::make_unique<ValidatorService>(
      &f->keys(), &f->usage(), self->parts_->validation_metrics.get(), validator);

  builder.RegisterService(self->parts_->validator.get());
  absl::StatusOr<std::unique_ptr<grpc::Server>> server =
      StartServer(builder, o.listen, self->ports_);
  if (!server.ok()) return server.status();
  self->parts_->server = *std::move(server);
  self->parts_->server->GetHealthCheckService()->SetServingStatus(false);
  if (!o.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics =
        MetricsServer::Start(o.metrics_listen, &self->parts_->metrics, o.metrics_allow_remote);
    if (!metrics.ok()) return metrics.status();
    self->parts_->metrics_server = *std::move(metrics);
  }
  SidecarServer* raw = self.get();
  self->health_ = std::make_unique<Periodic>(absl::Milliseconds(20), [raw] { raw->CheckHealth(); });
  return self;
}

SidecarServer::~SidecarServer() { Shutdown(); }

int SidecarServer::metrics_port() const {
  return parts_->metrics_server ? parts_->metrics_server->port() : 0;
}

void SidecarServer::CheckHealth() {
  const bool now_serving = fresh();
  if (now_serving == serving_) return;
  serving_ = now_serving;
  parts_->server->GetHealthCheckService()->SetServingStatus(serving_);
  const SyncClient::State s = follower_->sync_state();
  if (serving_) {
    spdlog::info("SERVING: {} keys at revision {}", keys().size(), s.applied);
  } else {
    spdlog::warn("NOT_SERVING: last confirmed by the authority {} ago (max {})",
                 absl::FormatDuration(absl::Now() - s.last_confirmed),
                 absl::FormatDuration(options_.max_staleness));
  }
}

void SidecarServer::Shutdown() {
  if (stopped_.exchange(true)) return;
  if (health_) health_->Stop();
  if (parts_->server) {
    parts_->server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    parts_->server->Wait();
  }
  if (follower_) follower_->Stop();  // usage flushed, leaving said, state saved
}

std::string SidecarServer::address(size_t i) const {
  const std::string& a = options_.listen.addresses.at(i);
  if (a.starts_with("unix:")) return a;
  return StrCat("127.0.0.1:", port(i));
}

}  // namespace latchkey
