#include "sidecar/follower.h"

#include <unistd.h>

#include "absl/time/clock.h"
#include "common/files.h"
#include "common/key_format.h"
#include "common/log.h"
#include "common/net.h"
#include "common/strings.h"
#include "common/time_util.h"
#include "sidecar/state_file.h"

namespace latchkey {
namespace {

std::string DefaultSidecarId() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return StrCat(host, "-", getpid());
}

}  // namespace

Validation Check(const KeySet& keys, std::string_view key, bool rejecting) {
  if (!rejecting) return keys.Validate(key);
  // Stale under the reject policy: say nothing we cannot vouch for, but a
  // malformed key is malformed whatever the authority says.
  Validation v;
  v.verdict = ParseKey(key) == v1::KEY_KIND_UNSPECIFIED ? v1::MALFORMED : v1::UNKNOWN;
  return v;
}

Validation CheckAndCount(const KeySet& keys, UsageCounter& usage, std::string_view key,
                         bool rejecting) {
  const Validation v = Check(keys, key, rejecting);
  usage.Count(v, CoarseNow());
  return v;
}

absl::StatusOr<std::unique_ptr<Follower>> Follower::Start(FollowerOptions options) {
  if (options.token.empty()) return absl::InvalidArgumentError("no token for the authority");
  if (options.sidecar_id.empty()) options.sidecar_id = DefaultSidecarId();
  std::unique_ptr<Follower> self(new Follower(std::move(options)));
  const FollowerOptions& o = self->options_;

  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      ChannelCredentials(o.authority_tls);
  if (!creds.ok()) return creds.status();
  absl::StatusOr<std::string> target = ClientTarget(o.authority, "--authority");
  if (!target.ok()) return target.status();
  auto channel = grpc::CreateChannel(*target, *creds);
  self->usage_ = std::make_unique<UsageReporter>(channel, o.token, o.sidecar_id, o.usage_interval);
  SyncOptions sync;
  sync.channel = channel;
  sync.token = o.token;
  sync.sidecar_id = o.sidecar_id;
  sync.on_applied = o.on_applied;
  self->sync_ = std::make_unique<SyncClient>(std::move(sync), &self->keys_);

  if (!o.state_file.empty()) self->LoadStateFile();
  self->sync_->Start();
  self->usage_->Start();
  Follower* raw = self.get();
  if (!o.state_file.empty()) {
    self->saver_ =
        std::make_unique<Periodic>(o.state_interval, [raw] { raw->SaveStateIfChanged(); });
  }
  return self;
}

Follower::~Follower() { Stop(); }

void Follower::Stop() {
  if (stopped_.exchange(true)) return;
  if (saver_) saver_->Stop();
  if (usage_) usage_->Stop();  // final report while the authority may listen
  if (sync_) sync_->Stop();
  if (!options_.state_file.empty() && sync_) SaveStateIfChanged();  // the latest, for a restart
}

bool Follower::fresh() const {
  const SyncClient::State s = sync_->state();
  return s.synced && absl::Now() - s.last_confirmed <= options_.max_staleness;
}

void Follower::LoadStateFile() {
  KeySet::Builder builder;
  absl::StatusOr<SavedState> saved = LoadState(options_.state_file, builder);
  if (absl::IsNotFound(saved.status())) {
    spdlog::info("no state file at {} yet; starting empty", options_.state_file);
    return;
  }
  if (!saved.ok()) {
    spdlog::warn("ignoring the state file: {}; starting empty", saved.status().ToString());
    return;
  }
  const size_t loaded = builder.size();
  keys_.Replace(builder);
  sync_->Restore(saved->store_id, saved->revision, saved->confirmed, saved->session);
  saved_ = {saved->store_id, saved->revision, 0, saved->confirmed};
  spdlog::info(
      "loaded {} keys at revision {} of store {} from {}, confirmed by the authority {} ago",
      loaded, saved->revision, saved->store_id, options_.state_file,
      absl::FormatDuration(absl::Trunc(absl::Now() - saved->confirmed, absl::Seconds(1))));
}

void Follower::SaveStateIfChanged() {
  const SyncClient::State before = sync_->state();
  if (!before.synced) return;  // nothing worth keeping yet
  const auto now =
      std::make_tuple(before.store_id, before.applied, before.snapshots, before.last_confirmed);
  if (now == saved_) return;
  const SavedState at{.store_id = before.store_id,
                      .revision = before.applied,
                      .confirmed = before.last_confirmed,
                      .session = sync_->session()};
  // Events applied while the set is copied are in it, beyond `at.revision`;
  // a replay from there repairs that. A snapshot swapped in meanwhile is not
  // repaired so: the copy is dropped and made again next time.
  const std::string file = EncodeState(keys_, at);
  const SyncClient::State after = sync_->state();
  if (after.store_id != before.store_id || after.snapshots != before.snapshots) return;
  if (absl::Status s = WritePrivateFile(options_.state_file, file); !s.ok()) {
    ++state_save_failures_;
    spdlog::warn("could not save the state file: {}", s.ToString());
    return;
  }
  ++state_saves_;
  saved_ = now;
}

void Follower::AddMetrics(Registry& m) {
  SyncClient* sync = sync_.get();
  const KeySet* keys = &keys_;
  m.AddGauge("latchkey_keys", "Key digests in memory (current and rotated-away values).",
             [keys] { return static_cast<double>(keys->size()); });
  m.AddGauge("latchkey_applied_revision", "Last revision applied from the authority.",
             [sync] { return static_cast<double>(sync->state().applied); });
  m.AddGauge("latchkey_synced", "1 once a full snapshot has been applied.",
             [sync] { return sync->state().synced ? 1.0 : 0.0; });
  const absl::Time started = absl::Now();
  m.AddGauge("latchkey_staleness_seconds",
             "Seconds since the authority last confirmed this sidecar was current (since start "
             "before the first sync).",
             [sync, started] {
               const SyncClient::State s = sync->state();
               const absl::Time since = s.synced ? s.last_confirmed : started;
               return absl::ToDoubleSeconds(absl::Now() - since);
             });
  m.AddCounterFunc("latchkey_snapshot_loads_total", "Full snapshots loaded.",
                   [sync] { return static_cast<double>(sync->state().snapshots); });
  m.AddCounterFunc("latchkey_events_applied_total", "Revisions applied from the watch stream.",
                   [sync] { return static_cast<double>(sync->state().events); });
  m.AddCounterFunc("latchkey_reconnects_total", "Watch streams that ended and were reopened.",
                   [sync] { return static_cast<double>(sync->state().reconnects); });
  std::atomic<uint64_t>* saves = &state_saves_;
  std::atomic<uint64_t>* failures = &state_save_failures_;
  m.AddCounterFunc("latchkey_state_file_saves_total", "Key sets saved to --state-file.",
                   [saves] { return static_cast<double>(saves->load()); });
  m.AddCounterFunc("latchkey_state_file_save_failures_total",
                   "Saves to --state-file that failed (the previous file stays).",
                   [failures] { return static_cast<double>(failures->load()); });
  m.AddCounterFunc("latchkey_watch_contract_violations_total",
                   "Streams dropped for a gap, duplicate or backwards revision.",
                   [sync] { return static_cast<double>(sync->state().contract_violations); });
}

}  // namespace latchkey
