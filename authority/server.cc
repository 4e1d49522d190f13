#include "authority/server.h"

#include "absl/time/clock.h"
#include "authority/fanout/event_hub.h"
#include "authority/fanout/propagation.h"
#include "authority/identity/oidc_verifier.h"
#include "authority/rpc/admin_service.h"
#include "authority/rpc/rpc_metrics.h"
#include "authority/rpc/secret_scanning.h"
#include "authority/rpc/sync_service.h"
#include "authority/store_factory.h"
#include "common/log.h"
#include "common/memory_release.h"
#include "common/periodic.h"
#include "common/strings.h"

namespace latchkey {

// Everything the server owns, in construction order (destroyed in reverse).
struct AuthorityServer::Parts {
  // The commit listener points at parts below; a shared store's watch may
  // still call it while they go.
  ~Parts() {
    if (store != nullptr) store->SetCommitListener(nullptr);
  }

  std::unique_ptr<KeyStore> store;
  std::unique_ptr<KeyAuthority> authority;
  std::unique_ptr<PropagationTracker> propagation;
  std::unique_ptr<EventHub> hub;
  // Reads the hub; read by /metrics until metrics_server is gone.
  std::unique_ptr<MemoryRelease> memory_release;
  std::unique_ptr<WorkQueue> store_work;  // outlives the services' calls
  std::unique_ptr<WebhookDeliverer> webhooks;
  std::unique_ptr<AdminService> admin;
  std::unique_ptr<SyncService> sync;
  std::unique_ptr<grpc::Server> server;
  Registry metrics;
  RpcMetrics rpc_metrics{&metrics};
  std::unique_ptr<MetricsServer> metrics_server;
  std::unique_ptr<SecretScanningServer> secret_scanning;
  std::unique_ptr<Periodic> store_health;  // stopped first
  std::unique_ptr<Periodic> share_receipts;
  std::unique_ptr<Periodic> usage_flush;
};

namespace {

void AddStoreMetrics(Registry& metrics, KeyStore* store, EventHub* hub, KeyAuthority* authority) {
  metrics.AddGauge("latchkey_head_revision", "Revision of the last committed mutation.",
                   [store] { return static_cast<double>(store->head_revision()); });
  metrics.AddGauge("latchkey_watchers", "Watch streams open (connected sidecars).",
                   [hub] { return static_cast<double>(hub->size()); });
  metrics.AddCounterFunc(
      "latchkey_auth_failures_total", "Calls refused for a missing, malformed or unknown token.",
      [authority] { return static_cast<double>(authority->failed_authentications()); });
  metrics.AddCounterFunc("latchkey_store_commits_total", "Durable mutations (synced writes).",
                         [store] { return static_cast<double>(store->stats().commits); });
  metrics.AddCounterFunc(
      "latchkey_store_conflicts_total",
      "Mutations the store refused: their revision was taken or a row they read changed.",
      [store] { return static_cast<double>(store->stats().conflicts); });
  metrics.AddCounterFunc(
      "latchkey_mutation_retries_total", "Mutations built again after the store refused them.",
      [authority] { return static_cast<double>(authority->conflict_retries()); });
  metrics.AddCounterFunc("latchkey_store_calls_total",
                         "Calls to a remote store (etcd); 0 for the embedded one.",
                         [store] { return static_cast<double>(store->stats().remote_calls); });
  metrics.AddCounterFunc(
      "latchkey_store_call_seconds_total",
      "Seconds spent in calls to a remote store; over latchkey_store_calls_total, the mean.",
      [store] { return store->stats().remote_call_seconds; });
  metrics.AddCounterFunc("latchkey_store_advisory_writes_total",
                         "Unsynced usage writes (one per usage report).",
                         [store] { return static_cast<double>(store->stats().advisory_writes); });
}

}  // namespace

namespace {

// Writes the usage reports summed in memory every `interval`; says so when
// it starts and stops failing (the counts wait in memory meanwhile).
std::unique_ptr<Periodic> FlushUsage(KeyAuthority* authority, absl::Duration interval) {
  return std::make_unique<Periodic>(interval, [authority, failing = std::make_shared<bool>(false)] {
    const absl::Status flushed = authority->FlushUsage();
    if (flushed.ok() == !*failing) return;
    *failing = !flushed.ok();
    if (flushed.ok()) {
      spdlog::info("usage is written to the store again");
    } else {
      spdlog::warn("writing usage to the store: {}; the counts wait in memory", flushed.ToString());
    }
  });
}

// Shares this replica's receipts with the others (docs/design.md, "Receipts
// across replicas"): every 100 ms when they changed, so that a receipt asked
// of another replica lags by about that much; the store keeps the row alive
// in between.
std::unique_ptr<Periodic> ShareReceipts(KeyStore* store, const PropagationTracker* propagation) {
  struct State {
    std::optional<uint64_t> version;  // of the tracker when `summary` was made
    std::string summary;
    bool failing = false;
  };
  return std::make_unique<Periodic>(
      absl::Milliseconds(100), [store, propagation, state = std::make_shared<State>()] {
        const uint64_t version = propagation->version();
        if (version != state->version) {
          state->summary = propagation->Share(absl::Now()).SerializeAsString();
          state->version = version;
        }
        // The store writes only a changed summary and renews its lease when due.
        const absl::Status shared = store->replicas().Share(state->summary);
        if (shared.ok() == state->failing) {
          state->failing = !shared.ok();
          if (shared.ok()) {
            spdlog::info("sharing receipts with the other replicas again");
          } else {
            spdlog::warn("sharing receipts with the other replicas: {}", shared.ToString());
          }
        }
      });
}

}  // namespace

AuthorityServer::AuthorityServer(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {
  authority_ = parts_->authority.get();
}

absl::StatusOr<std::unique_ptr<AuthorityServer>> AuthorityServer::Start(
    const AuthorityOptions& options) {
  auto parts = std::make_unique<Parts>();
  absl::StatusOr<OpenedStore> opened = OpenStore(options);
  if (!opened.ok()) return opened.status();
  parts->store = std::move(opened->store);
  KeyAuthorityOptions core_options;
  core_options.max_active_keys = options.max_active_keys;
  core_options.webhooks_allow_insecure_remote = options.listen.allow_insecure_remote;
  absl::StatusOr<std::unique_ptr<KeyAuthority>> authority =
      KeyAuthority::Create(parts->store.get(), std::move(opened->sealer), core_options);
  if (!authority.ok()) return authority.status();
  parts->authority = *std::move(authority);
  if (absl::Status s = opened->bootstrap(*parts->authority); !s.ok()) return s;
  if (!options.oidc.issuer_url.empty()) {
    absl::StatusOr<std::unique_ptr<OidcVerifier>> verifier = OidcVerifier::Create(options.oidc);
    if (!verifier.ok()) return verifier.status();
    parts->authority->SetIdTokenVerifier([v = std::shared_ptr<OidcVerifier>(*std::move(verifier))](
                                             std::string_view token) { return v->Verify(token); });
  }

  KeyStore* raw_store = parts->store.get();
  parts->hub = std::make_unique<EventHub>(raw_store->store_id(), options.progress_interval,
                                          [raw_store] { return raw_store->head_revision(); });
  EventHub* hub = parts->hub.get();
  parts->propagation = std::make_unique<PropagationTracker>(options.forget_sidecar_after);
  PropagationTracker* propagation = parts->propagation.get();
  Registry::Family<Counter>* mutations = &parts->metrics.AddCounterFamily(
      "latchkey_mutations_total", "Committed mutations, by audit action.", {"action"});
  AddStoreMetrics(parts->metrics, raw_store, hub, parts->authority.get());
  parts->store_work = std::make_unique<WorkQueue>(options.store_threads);
  WorkQueue* store_work = parts->store_work.get();
  KeyAuthority* core = parts->authority.get();
  WebhookDeliveryOptions webhook_options = options.webhooks;
  webhook_options.allow_insecure_remote = options.listen.allow_insecure_remote;
  parts->webhooks =
      std::make_unique<WebhookDeliverer>(core, raw_store, webhook_options, &parts->metrics);
  WebhookDeliverer* webhooks = parts->webhooks.get();
  // On a shared store the listener hears every replica's commits; a
  // principal another replica created or deleted reaches this one's token
  // table here (read on a store thread: the listener must not block).
  const bool shared = opened->shared;
  raw_store->SetCommitListener(
      [hub, propagation, mutations, store_work, core, shared, webhooks](
          const v1::KeyEvent& event, const v1::AuditEvent& audit, TableSet written) {
        propagation->Committed(event.revision(), absl::Now());
        const KeyAuthority::Consequences consequences = core->Committed(event, written);
        hub->Publish(event);
        webhooks->Wake(consequences.webhooks);
        mutations->With({audit.action()}).Inc();
        spdlog::info("revision {}: {} by {} project={} key={}", event.revision(), audit.action(),
                     audit.actor(), audit.project_id().empty() ? "-" : audit.project_id(),
                     audit.key_id().empty() ? "-" : audit.key_id());
        if (shared && consequences.principals) {
          store_work->Post([core] {
            if (absl::Status s = core->ReloadPrincipals(); !s.ok()) {
              spdlog::error("reloading principals: {}", s.ToString());
            }
          });
        }
      });
  parts->admin = std::make_unique<AdminService>(parts->authority.get(), raw_store, propagation,
                                                parts->store_work.get(), webhooks);
  parts->sync = std::make_unique<SyncService>(
      parts->authority.get(), raw_store, hub, propagation, parts->store_work.get(),
      SyncServiceOptions{
          .queue_limit = options.watch_queue_limit,
          .snapshot_keep_bytes = options.snapshot_cache_mb << 20,
          .metrics = &parts->rpc_metrics,
      });

  const SharedSnapshots* snapshots = &parts->sync->snapshots();
  parts->metrics.AddCounterFunc("latchkey_snapshots_read_total",
                                "Snapshots read from the store for sidecars (shared or kept ones "
                                "are read once).",
                                [snapshots] { return static_cast<double>(snapshots->begun()); });
  parts->metrics.AddGauge("latchkey_snapshot_kept_bytes",
                          "Bytes of the last snapshot's chunks, kept for the sidecars that start "
                          "after it (--snapshot-cache-mb).",
                          [snapshots] { return static_cast<double>(snapshots->kept_bytes()); });

  ListenOptions listen = options.listen;
  if (options.tls.enabled()) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> tls = ServerCredentials(options.tls);
    if (!tls.ok()) return tls.status();
    listen.tls = *std::move(tls);
  }
  EnableServerPlugins();
  grpc::ServerBuilder builder;
  std::vector<int> ports;
  if (absl::Status s = AddListeners(builder, listen, ports); !s.ok()) return s;
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(parts->rpc_metrics.Interceptor(SyncService::SelfCounted()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(parts->admin.get());
  builder.RegisterService(parts->sync.get());
  absl::StatusOr<std::unique_ptr<grpc::Server>> server = StartServer(builder, listen, ports);
  if (!server.ok()) return server.status();
  parts->server = *std::move(server);
  if (!options.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics =
        MetricsServer::Start(options.metrics_listen, &parts->metrics, options.metrics_allow_remote);
    if (!metrics.ok()) {
      parts->server->Shutdown();
      return metrics.status();
    }
    parts->metrics_server = *std::move(metrics);
  }
  if (!options.leak_report_listen.empty()) {
    SecretScanningOptions leak_options;
    leak_options.listen = options.leak_report_listen;
    leak_options.github_keys_file = options.github_keys_file;
    leak_options.tls = options.tls;
    leak_options.allow_insecure_remote = options.listen.allow_insecure_remote;
    absl::StatusOr<std::unique_ptr<SecretScanningServer>> leaks =
        SecretScanningServer::Start(leak_options, core, store_work, &parts->metrics);
    if (!leaks.ok()) {
      parts->server->Shutdown();
      return leaks.status();
    }
    parts->secret_scanning = *std::move(leaks);
  }
  if (opened->shared) {
    // Health follows the store's quorum: without it nothing can commit, and the
    // replica says so (NOT_SERVING) so that load balancers use another one.
    // So does a replica that can no longer follow the log (its store says why).
    grpc::HealthCheckServiceInterface* health = parts->server->GetHealthCheckService();
    parts->store_health = std::make_unique<Periodic>(
        absl::Seconds(1), [raw_store, health, serving = std::make_shared<bool>(true)] {
          const absl::Status reachable = raw_store->Reachable();
          if (reachable.ok() != *serving) {
            *serving = reachable.ok();
            if (*serving) {
              spdlog::info("the store answers again: SERVING");
            } else {
              spdlog::error("cannot serve from the store ({}): NOT_SERVING", reachable.ToString());
            }
          }
          health->SetServingStatus(*serving);
        });
    parts->share_receipts = ShareReceipts(raw_store, propagation);
  }
  parts->usage_flush = FlushUsage(core, options.usage_flush_interval);
  parts->memory_release = std::make_unique<MemoryRelease>(options.memory_release_interval,
                                                          [hub] { return hub->changes(); });
  const MemoryRelease* release = parts->memory_release.get();
  parts->metrics.AddCounterFunc(
      "latchkey_memory_releases_total",
      "Times what a burst of work freed was handed back to the operating system (malloc_trim).",
      [release] { return static_cast<double>(release->releases()); });
  parts->metrics.AddCounterFunc("latchkey_memory_release_seconds_total",
                                "Seconds spent giving freed heap memory back.",
                                [release] { return release->release_seconds(); });
  parts->metrics.AddCounterFunc(
      "latchkey_memory_released_bytes_total",
      "How much resident memory went down across each release, summed (approximate).",
      [release] { return static_cast<double>(release->released_bytes()); });

  std::unique_ptr<AuthorityServer> self(new AuthorityServer(std::move(parts)));
  self->ports_ = std::move(ports);
  self->admin_token_path_ = opened->admin_token_path;
  return self;
}

AuthorityServer::~AuthorityServer() { Shutdown(); }

void AuthorityServer::Shutdown(absl::Duration deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  parts_->memory_release->Stop();
  parts_->store_health.reset();
  parts_->share_receipts.reset();
  parts_->secret_scanning.reset();  // after the reports in flight
  // Watch streams never end by themselves.
  parts_->hub->CloseAll(absl::UnavailableError("authority shutting down"));
  parts_->server->Shutdown(absl::ToChronoTime(absl::Now() + deadline));
  parts_->server->Wait();
  // No report comes in any more: write what is summed.
  parts_->usage_flush.reset();
  if (absl::Status flushed = authority_->FlushUsage(); !flushed.ok()) {
    spdlog::warn("usage reported since the last flush is lost: {}", flushed.ToString());
  }
  // Attempts in flight finish (at most the delivery timeout); the rest
  // resume from the progress rows on the next start.
  parts_->webhooks->Stop();
  parts_->store->SetCommitListener(nullptr);
  parts_.reset();
}

std::string AuthorityServer::address(size_t i) const { return StrCat("127.0.0.1:", port(i)); }

int AuthorityServer::metrics_port() const {
  return parts_ && parts_->metrics_server ? parts_->metrics_server->port() : 0;
}

int AuthorityServer::leak_report_port() const {
  return parts_ && parts_->secret_scanning ? parts_->secret_scanning->port() : 0;
}

std::string AuthorityServer::admin_token_path() const { return admin_token_path_; }

KeyStore& AuthorityServer::store() { return *parts_->store; }

}  // namespace latchkey
