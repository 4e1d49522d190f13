#include "authority/webhooks/webhook_delivery.h"

#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/http.h"
#include "common/key_format.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

using internal::WebhookProgress;
using nlohmann::json;

// Attempts a webhook's progress row remembers for `webhook deliveries`.
constexpr int kMaxDeliveries = 50;
// Audit records read per look at the log.
constexpr size_t kLogBatch = 64;
constexpr char kDuty[] = "webhooks";
// A cursor moved only past events a webhook does not want is saved at most
// this often: losing such a save costs a second look at the same records.
constexpr absl::Duration kSkippedSaveEvery = absl::Seconds(10);

// A line for people (Slack) about one event.
std::string Sentence(std::string_view type, const v1::AuditEvent& r) {
  if (type == "ping") return "latchkey: a test delivery (ping) to this webhook";
  std::string text = StrCat("latchkey: *", type, "*");
  if (!r.key_id().empty()) text += StrCat(" key `", r.key_id(), "`");
  if (!r.project_id().empty()) text += StrCat(" in project `", r.project_id(), "`");
  if (!r.actor().empty()) text += StrCat(" by ", r.actor());
  if (!r.detail().empty()) text += StrCat(": ", r.detail());
  return text;
}

// Cuts an HTTP attempt short when its deadline passes or when fired (the
// lane is stopping). One attempt at a time.
class Cutter {
 public:
  void Fire() {
    MutexLock lock(&mu_);
    fired_ = true;
    changed_.SignalAll();
  }
  bool fired() {
    MutexLock lock(&mu_);
    return fired_;
  }
  // Runs `attempt` here; `cut` runs on another thread if the attempt is
  // still going at `timeout` or once fired.
  void Run(absl::Duration timeout, const std::function<void()>& attempt,
           const std::function<void()>& cut) {
    {
      MutexLock lock(&mu_);
      running_ = true;
    }
    std::thread watchdog([&] {
      MutexLock lock(&mu_);
      changed_.WaitFor(&mu_, timeout,
                       [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !running_ || fired_; });
      if (running_) cut();
    });
    attempt();
    {
      MutexLock lock(&mu_);
      running_ = false;
      changed_.SignalAll();
    }
    watchdog.join();
  }

 private:
  Mutex mu_;
  CondVar changed_;
  bool fired_ ABSL_GUARDED_BY(mu_) = false;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
};

// One POST of `msg` to the webhook, as a delivery record (attempt unset).
v1::WebhookDelivery Send(const KeyAuthority::WebhookTarget& target, const WebhookMessage& msg,
                         uint64_t revision, const WebhookDeliveryOptions& options, Cutter& cutter) {
  v1::WebhookDelivery d;
  d.set_event_id(msg.event_id);
  d.set_event_type(msg.type);
  d.set_revision(revision);
  const absl::Time start = absl::Now();
  *d.mutable_time() = ToProto(start);
  absl::StatusOr<HttpUrl> url = ParseHttpUrl(target.webhook.url());
  if (!url.ok()) {
    d.set_error(StrCat("url: ", std::string(url.status().message())));
    return d;
  }
  if (!url->tls && !url->local() && !options.allow_insecure_remote) {
    d.set_error("plain http:// beyond loopback needs --allow-insecure-remote on this replica");
    return d;
  }
  httplib::Client client(url->origin());
  const auto t = absl::ToChronoMicroseconds(options.timeout);
  client.set_connection_timeout(t);
  client.set_read_timeout(t);
  client.set_write_timeout(t);
  client.set_follow_location(false);  // a redirect is an answer, not a 2xx
  const httplib::Headers headers = {
      {"Latchkey-Signature", WebhookSignature(target.secret, absl::ToUnixSeconds(start), msg.body)},
      {"Latchkey-Event-Id", msg.event_id},
      {"User-Agent", "latchkey-webhooks/1"}};
  httplib::Result res{nullptr, httplib::Error::Canceled};
  cutter.Run(
      options.timeout, [&] { res = client.Post(url->path, headers, msg.body, "application/json"); },
      [&] { client.stop(); });
  const absl::Duration took = absl::Now() - start;
  d.set_duration_ms(absl::ToInt64Milliseconds(took));
  if (!res) {
    d.set_error(took >= options.timeout
                    ? StrCat("no answer within ", absl::FormatDuration(options.timeout))
                    : StrCat("no answer: ", httplib::to_string(res.error())));
    return d;
  }
  d.set_status_code(res->status);
  if (res->status < 200 || res->status > 299) d.set_error(StrCat("answered HTTP ", res->status));
  return d;
}

}  // namespace

std::optional<std::string_view> WebhookEventOf(std::string_view action) {
  if (action == "project.api_access_enabled" || action == "project.api_access_disabled") {
    return "project.api_access_changed";
  }
  for (std::string_view e : kWebhookEvents) {
    if (e == action) return e;
  }
  return std::nullopt;
}

std::string WebhookSignature(std::string_view secret, int64_t unix_seconds, std::string_view body) {
  const std::string signed_text = StrCat(unix_seconds, ".", body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signed_text.data()), signed_text.size(), mac, &size);
  return StrCat("t=", unix_seconds, ",v1=",
                HexPrefix(std::string_view(reinterpret_cast<const char*>(mac), size), size));
}

WebhookMessage WebhookMessageOf(const v1::Webhook& webhook, std::string_view type,
                                const v1::AuditEvent& record, std::string_view store_id) {
  WebhookMessage msg;
  msg.type = std::string(type);
  // One id per event, the same on every attempt and for every webhook, so
  // receivers can drop what they already have.
  msg.event_id =
      record.revision() == 0
          ? StrCat("evt_", RandomBase62(24))
          : StrCat("evt_", HexPrefix(Sha256Bytes(StrCat(store_id, "/", record.revision())), 12));
  if (webhook.format() == v1::WEBHOOK_FORMAT_SLACK) {
    msg.body = json{{"text", Sentence(type, record)}}.dump();
    return msg;
  }
  const absl::Time when = FromProto(record.time());
  json data = json::object();
  if (record.revision() != 0) data["revision"] = record.revision();
  if (!record.project_id().empty()) data["project_id"] = record.project_id();
  if (!record.key_id().empty()) data["key_id"] = record.key_id();
  if (!record.actor().empty()) data["actor"] = record.actor();
  if (!record.detail().empty()) data["detail"] = record.detail();
  if (record.action() == "project.api_access_enabled") data["enabled"] = true;
  if (record.action() == "project.api_access_disabled") data["enabled"] = false;
  data["time"] = FormatRfc3339(when);
  msg.body = json{{"id", msg.event_id},
                  {"type", msg.type},
                  {"created", absl::ToUnixSeconds(when)},
                  {"data", std::move(data)}}
                 .dump();
  return msg;
}

// One webhook's deliveries, on a thread of its own, so that a slow receiver
// delays only its own events.
class WebhookDeliverer::Lane {
 public:
  Lane(WebhookDeliverer* owner, KeyAuthority::WebhookTarget target)
      : owner_(owner), target_(std::move(target)), thread_([this] { Run(); }) {}

  // Joins the thread; RequestStop first to end many lanes at once.
  ~Lane() {
    RequestStop();
    thread_.join();
  }

  // The thread ends soon: an attempt in flight is cut, none more starts.
  void RequestStop() {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
      wake_.SignalAll();
    }
    cutter_.Fire();
  }

  void Wake() {
    MutexLock lock(&mu_);
    woken_ = true;
    wake_.SignalAll();
  }

 private:
  const v1::Webhook& webhook() const { return target_.webhook; }
  const std::string& id() const { return target_.webhook.webhook_id(); }

  bool stopping() {
    MutexLock lock(&mu_);
    return stopping_;
  }

  // Waits for a wake, the next retry, or the poll interval; false once
  // stopping.
  bool Sleep(absl::Duration d) {
    MutexLock lock(&mu_);
    wake_.WaitFor(&mu_, d,
                  [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || woken_; });
    woken_ = false;
    return !stopping_;
  }

  void Run() {
    // Where an earlier holder of the duty left off.
    bool warned = false;
    for (;;) {
      absl::StatusOr<WebhookProgress> progress = LoadWebhookProgress(*owner_->store_, id());
      if (progress.ok()) {
        progress_ = *std::move(progress);
        break;
      }
      if (!warned) {
        spdlog::error("webhook {}: reading its progress ({}); trying again", id(),
                      progress.status().ToString());
        warned = true;
      }
      if (!Sleep(owner_->options_.poll)) return;
    }
    progress_.set_delivered_revision(
        std::max(progress_.delivered_revision(), target_.start_revision));
    for (;;) {
      const absl::Time due = absl::FromUnixMicros(progress_.next_attempt_micros());
      if (progress_.attempts() == 0 || absl::Now() >= due) DeliverPending();
      if (stopping()) return;
      absl::Duration wait = owner_->options_.poll;
      if (progress_.attempts() > 0) wait = std::min(wait, due - absl::Now());
      if (!Sleep(std::max(wait, absl::ZeroDuration()))) return;
    }
  }

  bool Wants(const v1::AuditEvent& r, std::string_view type) const {
    if (!webhook().project_id().empty() && r.project_id() != webhook().project_id()) return false;
    return std::find(webhook().events().begin(), webhook().events().end(), type) !=
           webhook().events().end();
  }

  // Delivers the events after the cursor, in order, until the log ends or
  // one fails.
  void DeliverPending() {
    bool skipped = false;
    while (!stopping()) {
      absl::StatusOr<std::vector<v1::AuditEvent>> records =
          owner_->store_->AuditLog(progress_.delivered_revision(), kLogBatch);
      if (!records.ok()) {
        spdlog::warn("webhook {}: reading the audit log: {}", id(), records.status().ToString());
        return;
      }
      if (records->empty()) break;
      for (const v1::AuditEvent& r : *records) {
        const std::optional<std::string_view> type = WebhookEventOf(r.action());
        if (!type || !Wants(r, *type)) {
          progress_.set_delivered_revision(r.revision());
          skipped = true;
          continue;
        }
        if (!Attempt(r, *type)) return;  // Attempt saves
        skipped = false;
        if (stopping()) return;
      }
    }
    if (skipped && absl::Now() - last_saved_ >= kSkippedSaveEvery) Save();
  }

  // Whether the webhook still exists at the head: once its deletion is
  // committed (before any later event), nothing more goes to it.
  bool Exists() {
    absl::StatusOr<std::optional<std::string>> row = owner_->store_->Get(Table::kWebhooks, id());
    return !row.ok() || row->has_value();  // an unreadable store: the attempt tells
  }

  // One attempt at the event after the cursor; true when it was delivered.
  bool Attempt(const v1::AuditEvent& record, std::string_view type) {
    if (!Exists()) {
      RequestStop();
      return false;
    }
    const WebhookMessage msg =
        WebhookMessageOf(webhook(), type, record, owner_->store_->store_id());
    v1::WebhookDelivery d = Send(target_, msg, record.revision(), owner_->options_, cutter_);
    // Cut short by a stop: whoever delivers next sends it again. (One that
    // was answered 2xx before the stop counts.)
    if (!d.error().empty() && stopping()) return false;
    d.set_attempt(static_cast<int32_t>(progress_.attempts()) + 1);
    const absl::Time now = FromProto(d.time());
    const bool delivered = d.error().empty();
    progress_.set_last_attempt_micros(absl::ToUnixMicros(now));
    if (delivered) {
      progress_.set_delivered_revision(record.revision());
      progress_.set_attempts(0);
      progress_.set_first_failure_micros(0);
      progress_.set_next_attempt_micros(0);
      progress_.clear_last_error();
      progress_.set_failing(false);
      if (owner_->delivered_ != nullptr) owner_->delivered_->Inc();
    } else {
      Failed(msg, d, now);
    }
    *progress_.add_deliveries() = std::move(d);
    if (progress_.deliveries_size() > kMaxDeliveries) {
      progress_.mutable_deliveries()->DeleteSubrange(0,
                                                     progress_.deliveries_size() - kMaxDeliveries);
    }
    Save();
    return delivered;
  }

  // Schedules the next attempt at a failed event.
  void Failed(const WebhookMessage& msg, const v1::WebhookDelivery& d, absl::Time now) {
    const WebhookDeliveryOptions& o = owner_->options_;
    if (progress_.attempts() == 0) progress_.set_first_failure_micros(absl::ToUnixMicros(now));
    progress_.set_attempts(progress_.attempts() + 1);
    absl::Duration wait = o.retry_min;
    for (uint32_t i = 1; i < progress_.attempts() && wait < o.retry_max; ++i) wait *= 2;
    wait = std::min(wait, o.retry_max);
    progress_.set_next_attempt_micros(absl::ToUnixMicros(now + wait));
    progress_.set_last_error(d.error());
    const bool failing =
        now - absl::FromUnixMicros(progress_.first_failure_micros()) >= o.failing_after;
    if (failing && !progress_.failing()) {
      spdlog::error("webhook {}: event {} has failed for {}; the webhook is FAILING", id(),
                    msg.event_id, absl::FormatDuration(o.failing_after));
    }
    progress_.set_failing(failing);
    spdlog::warn("webhook {}: {} {} attempt {}: {}; next in {}", id(), msg.type, msg.event_id,
                 d.attempt(), d.error(), absl::FormatDuration(wait));
    if (owner_->failed_ != nullptr) owner_->failed_->Inc();
  }

  // Writes the progress, only while this replica holds the duty: one whose
  // duty lapsed stops here and leaves the row to the new holder.
  void Save() {
    last_saved_ = absl::Now();
    absl::Status s = owner_->store_->PutProgress(KeyAuthority::WebhookProgressKey(id()),
                                                 progress_.SerializeAsString(), kDuty);
    if (absl::IsAborted(s)) {
      spdlog::warn("webhook {}: {}; stopping here", id(), s.ToString());
      RequestStop();
    } else if (!s.ok()) {
      // The next save carries it; a crash before then delivers again.
      spdlog::warn("webhook {}: saving its progress: {}", id(), s.ToString());
    }
  }

  WebhookDeliverer* const owner_;
  const KeyAuthority::WebhookTarget target_;
  // The lane's thread only.
  WebhookProgress progress_;
  absl::Time last_saved_ = absl::InfinitePast();
  Cutter cutter_;
  Mutex mu_;
  CondVar wake_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: it starts with everything above made
};

WebhookDeliverer::WebhookDeliverer(KeyAuthority* authority, KeyStore* store,
                                   WebhookDeliveryOptions options, Registry* metrics)
    : authority_(authority), store_(store), options_(options) {
  if (metrics != nullptr) {
    Registry::Family<Counter>& attempts = metrics->AddCounterFamily(
        "latchkey_webhook_attempts_total", "Webhook delivery attempts, by outcome.", {"outcome"});
    delivered_ = &attempts.With({"delivered"});
    failed_ = &attempts.With({"failed"});
  }
  thread_ = std::thread([this] { Loop(); });
  // Reads every key: on a thread of its own, so that the loop keeps
  // renewing the duty meanwhile.
  sweep_ = std::make_unique<Periodic>(options_.expiry_sweep, [this] {
    if (!leading_.load()) return;
    absl::StatusOr<int> announced = authority_->AnnounceExpiring(absl::Now());
    if (!announced.ok()) {
      spdlog::warn("webhooks: looking for keys about to expire: {}", announced.status().ToString());
    } else if (*announced > 0) {
      spdlog::info("webhooks: {} key.expiring notices", *announced);
    }
  });
}

WebhookDeliverer::~WebhookDeliverer() { Stop(); }

void WebhookDeliverer::Wake(bool webhooks_changed) {
  MutexLock lock(&mu_);
  woken_ = true;
  changed_ = changed_ || webhooks_changed;
  wake_.SignalAll();
}

void WebhookDeliverer::Stop() {
  {
    MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    wake_.SignalAll();
  }
  sweep_->Stop();
  thread_.join();
}

void WebhookDeliverer::Loop() {
  bool leading = false;
  absl::Time asked = absl::InfinitePast(), reconciled = absl::InfinitePast();
  for (;;) {
    bool changed;
    {
      MutexLock lock(&mu_);
      wake_.WaitFor(&mu_, options_.poll,
                    [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || woken_; });
      if (stopping_) break;
      woken_ = false;
      changed = changed_;
      changed_ = false;
    }
    const absl::Time now = absl::Now();
    // The duty and the set of webhooks change rarely: looked at once a poll
    // interval, however many commits wake the loop meanwhile (and the set at
    // once when a webhook was created or deleted).
    if (now - asked >= options_.poll) {
      asked = now;
      absl::StatusOr<bool> lead = store_->replicas().Lead(kDuty);
      if (!lead.ok()) {
        spdlog::warn("webhooks: asking for the delivery duty: {}", lead.status().ToString());
      }
      const bool now_leading = lead.ok() && *lead;
      if (now_leading != leading) {
        spdlog::info("webhooks: this replica {} delivering", now_leading ? "is" : "stops");
        leading = now_leading;
        leading_.store(leading);
        reconciled = absl::InfinitePast();
      }
    }
    if (changed || now - reconciled >= options_.poll) {
      reconciled = now;
      Reconcile(leading);
    }
    for (auto& [id, lane] : lanes_) lane->Wake();
  }
  leading_.store(false);
  std::vector<std::unique_ptr<Lane>> all;
  for (auto& [id, lane] : lanes_) all.push_back(std::move(lane));
  lanes_.clear();
  EndLanes(std::move(all));
}

void WebhookDeliverer::EndLanes(std::vector<std::unique_ptr<Lane>> lanes) {
  for (const std::unique_ptr<Lane>& lane : lanes) lane->RequestStop();
  lanes.clear();  // joins each
}

void WebhookDeliverer::Reconcile(bool leading) {
  std::vector<std::unique_ptr<Lane>> ended;
  if (!leading) {
    for (auto& [id, lane] : lanes_) ended.push_back(std::move(lane));
    lanes_.clear();
    EndLanes(std::move(ended));
    return;
  }
  absl::StatusOr<std::vector<KeyAuthority::WebhookTarget>> targets = authority_->WebhookTargets();
  if (!targets.ok()) {
    spdlog::warn("webhooks: reading them: {}", targets.status().ToString());
    return;
  }
  std::map<std::string, std::unique_ptr<Lane>> kept;
  for (KeyAuthority::WebhookTarget& t : *targets) {
    const std::string id = t.webhook.webhook_id();
    auto it = lanes_.find(id);
    if (it != lanes_.end()) {
      kept[id] = std::move(it->second);
      lanes_.erase(it);
    } else {
      kept[id] = std::make_unique<Lane>(this, std::move(t));
    }
  }
  // What is left was deleted: its lanes end, and then its progress.
  std::vector<std::string> deleted;
  for (auto& [id, lane] : lanes_) {
    deleted.push_back(id);
    ended.push_back(std::move(lane));
  }
  lanes_ = std::move(kept);
  EndLanes(std::move(ended));
  for (const std::string& id : deleted) {
    store_->PutProgress(KeyAuthority::WebhookProgressKey(id), std::nullopt, kDuty).IgnoreError();
  }
}

absl::StatusOr<v1::WebhookDelivery> WebhookDeliverer::Test(const Caller& caller,
                                                           const v1::TestWebhookRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kWebhooks); !s.ok()) return s;
  absl::StatusOr<KeyAuthority::WebhookTarget> target =
      authority_->FindWebhookTarget(req.webhook_id());
  if (!target.ok()) return target.status();
  v1::AuditEvent ping;
  ping.set_action("ping");
  ping.set_actor(caller.name);
  *ping.mutable_time() = ToProto(absl::Now());
  const WebhookMessage msg = WebhookMessageOf(target->webhook, "ping", ping, store_->store_id());
  Cutter cutter;
  v1::WebhookDelivery d = Send(*target, msg, 0, options_, cutter);
  d.set_attempt(1);
  return d;
}

void WebhookDeliverer::TestAsync(const Caller& caller, const v1::TestWebhookRequest& req,
                                 std::function<void(absl::StatusOr<v1::WebhookDelivery>)> done) {
  pings_.Post([this, caller, req, done = std::move(done)] { done(Test(caller, req)); });
}

}  // namespace latchkey
