// Webhooks: where key events go (docs/design.md, "Webhooks"). The
// deliveries are authority/webhooks/webhook_delivery.cc's; this file keeps the
// webhooks themselves, each a row of Table::kWebhooks with its signing
// secret sealed by the master key, changed by one mutation each.
#include <algorithm>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "authority/core/internal/mutations.h"
#include "authority/core/key_authority.h"
#include "authority/core/webhooks.h"
#include "common/http.h"
#include "common/key_format.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

using internal::Audit;
using internal::Put;
using internal::WebhookProgress;
using internal::WebhookRecord;

// The guard row of the set of webhooks (their number is limited).
constexpr char kWebhooksGuard[] = "webhooks";
constexpr size_t kWebhookIdRandomChars = 16;
constexpr size_t kWebhookSecretRandomChars = 32;
constexpr size_t kMaxUrlBytes = 2048;

absl::Status CheckWebhookId(std::string_view id) {
  if (id.size() == 4 + kWebhookIdRandomChars && id.starts_with("whk_") && AllBase62(id.substr(4))) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("webhook_id must be whk_ followed by 16 letters and digits");
}

std::string KnownEvents() {
  std::string list;
  for (std::string_view e : kWebhookEvents) list += StrCat(list.empty() ? "" : ", ", e);
  return list;
}

absl::StatusOr<WebhookRecord> ParseWebhook(const std::string& row) {
  WebhookRecord rec;
  if (!rec.ParseFromString(row)) return absl::DataLossError("webhook record");
  return rec;
}

}  // namespace

std::string KeyAuthority::WebhookProgressKey(std::string_view webhook_id) {
  return StrCat("webhook/", webhook_id);
}

absl::StatusOr<WebhookProgress> LoadWebhookProgress(const KeyStore& store,
                                                    std::string_view webhook_id) {
  absl::StatusOr<std::optional<std::string>> row =
      store.GetProgress(KeyAuthority::WebhookProgressKey(webhook_id));
  if (!row.ok()) return row.status();
  WebhookProgress p;
  if (row->has_value() && !p.ParseFromString(**row)) {
    return absl::DataLossError("webhook progress");
  }
  return p;
}

absl::StatusOr<v1::CreateWebhookResponse> KeyAuthority::CreateWebhook(
    const Caller& caller, const v1::CreateWebhookRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kWebhooks); !s.ok()) return s;
  if (req.url().size() > kMaxUrlBytes) {
    return absl::InvalidArgumentError(StrCat("url is longer than ", kMaxUrlBytes, " bytes"));
  }
  absl::StatusOr<HttpUrl> url = ParseHttpUrl(req.url());
  if (!url.ok())
    return absl::InvalidArgumentError(StrCat("url: ", std::string(url.status().message())));
  if (!url->tls && !url->local() && !options_.webhooks_allow_insecure_remote) {
    return absl::InvalidArgumentError(
        "url: plain http:// is allowed only to a loopback address; use https:// (or start the "
        "authority with --allow-insecure-remote behind a TLS proxy)");
  }
  if (req.events().empty()) {
    return absl::InvalidArgumentError(StrCat("events: name at least one of ", KnownEvents()));
  }
  std::set<std::string> events;
  for (const std::string& e : req.events()) {
    if (std::find(std::begin(kWebhookEvents), std::end(kWebhookEvents), e) ==
        std::end(kWebhookEvents)) {
      return absl::InvalidArgumentError(
          StrCat("events: \"", absl::CEscape(e), "\" is not one of ", KnownEvents()));
    }
    events.insert(e);
  }
  if (req.format() != v1::WEBHOOK_FORMAT_UNSPECIFIED && req.format() != v1::WEBHOOK_FORMAT_JSON &&
      req.format() != v1::WEBHOOK_FORMAT_SLACK) {
    return absl::InvalidArgumentError("format must be WEBHOOK_FORMAT_JSON or WEBHOOK_FORMAT_SLACK");
  }
  const std::string secret = StrCat("whsec_", RandomBase62(kWebhookSecretRandomChars));
  v1::CreateWebhookResponse resp;
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    if (!req.project_id().empty()) {
      absl::StatusOr<internal::ProjectRecord> project = LoadProject(req.project_id(), tx);
      if (!project.ok()) return project.status();
    }
    absl::StatusOr<std::optional<std::string>> guard = tx.Get(Table::kGuards, kWebhooksGuard);
    if (!guard.ok()) return guard.status();
    absl::StatusOr<Page> existing = tx.Scan(Table::kWebhooks, "", "", kMaxWebhooks);
    if (!existing.ok()) return existing.status();
    if (existing->rows.size() >= static_cast<size_t>(kMaxWebhooks)) {
      return absl::ResourceExhaustedError(
          StrCat("there are already ", kMaxWebhooks, " webhooks; delete one first"));
    }
    const absl::Time now = absl::Now();
    WebhookRecord rec;
    v1::Webhook& w = *rec.mutable_webhook();
    w.set_webhook_id(GenerateId("whk_", kWebhookIdRandomChars));
    w.set_url(req.url());
    for (const std::string& e : events) w.add_events(e);
    w.set_project_id(req.project_id());
    w.set_format(req.format() == v1::WEBHOOK_FORMAT_SLACK ? v1::WEBHOOK_FORMAT_SLACK
                                                          : v1::WEBHOOK_FORMAT_JSON);
    w.set_created_by(caller.name);
    *w.mutable_create_time() = ToProto(now);
    absl::StatusOr<std::string> sealed = sealer_.Seal(secret, w.webhook_id());
    if (!sealed.ok()) return sealed.status();
    rec.set_sealed_secret(*std::move(sealed));
    rec.set_start_revision(tx.revision());
    m.writes.push_back(Put(Table::kWebhooks, w.webhook_id(), rec));
    internal::TouchGuard(m, kWebhooksGuard, tx.revision());
    // The URL's scheme and host only: its path may itself be a credential
    // (a Slack incoming webhook's is), so audit records never hold it.
    m.audit = Audit(
        caller, "webhook.created", req.project_id(), "",
        StrCat(w.webhook_id(), " to ", url->origin(), " events=", absl::StrJoin(w.events(), ","),
               w.format() == v1::WEBHOOK_FORMAT_SLACK ? " format=slack" : ""),
        now);
    *resp.mutable_webhook() = w;
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  resp.mutable_webhook()->set_status(v1::WEBHOOK_STATUS_HEALTHY);
  resp.mutable_webhook()->set_delivered_revision(*rev);
  resp.set_secret(secret);
  return resp;
}

absl::StatusOr<v1::ListWebhooksResponse> KeyAuthority::ListWebhooks(
    const Caller& caller, const v1::ListWebhooksRequest& /*req*/) {
  if (absl::Status s = Authorize(caller, Permission::kWebhooks); !s.ok()) return s;
  absl::StatusOr<Page> page = store_->Scan(Table::kWebhooks, "", "", kMaxWebhooks);
  if (!page.ok()) return page.status();
  v1::ListWebhooksResponse resp;
  for (const Row& row : page->rows) {
    absl::StatusOr<WebhookRecord> rec = ParseWebhook(row.value);
    if (!rec.ok()) return rec.status();
    v1::Webhook& w = *resp.add_webhooks() = rec->webhook();
    absl::StatusOr<WebhookProgress> progress = LoadWebhookProgress(*store_, w.webhook_id());
    if (!progress.ok()) return progress.status();
    const WebhookProgress& p = *progress;
    w.set_delivered_revision(std::max(p.delivered_revision(), rec->start_revision()));
    w.set_status(p.failing()        ? v1::WEBHOOK_STATUS_FAILING
                 : p.attempts() > 0 ? v1::WEBHOOK_STATUS_RETRYING
                                    : v1::WEBHOOK_STATUS_HEALTHY);
    if (p.last_attempt_micros() != 0) {
      *w.mutable_last_attempt_time() = ToProto(absl::FromUnixMicros(p.last_attempt_micros()));
    }
    if (p.attempts() > 0) w.set_last_error(p.last_error());
  }
  return resp;
}

absl::StatusOr<v1::DeleteWebhookResponse> KeyAuthority::DeleteWebhook(
    const Caller& caller, const v1::DeleteWebhookRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kWebhooks); !s.ok()) return s;
  if (absl::Status s = CheckWebhookId(req.webhook_id()); !s.ok()) return s;
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    absl::StatusOr<std::optional<std::string>> row = tx.Get(Table::kWebhooks, req.webhook_id());
    if (!row.ok()) return row.status();
    if (!row->has_value()) {
      return absl::NotFoundError(StrCat("webhook ", req.webhook_id(), " not found"));
    }
    absl::StatusOr<WebhookRecord> rec = ParseWebhook(**row);
    if (!rec.ok()) return rec.status();
    absl::StatusOr<std::optional<std::string>> guard = tx.Get(Table::kGuards, kWebhooksGuard);
    if (!guard.ok()) return guard.status();
    m.writes.push_back(internal::Erase(Table::kWebhooks, req.webhook_id()));
    internal::TouchGuard(m, kWebhooksGuard, tx.revision());
    absl::StatusOr<HttpUrl> url = ParseHttpUrl(rec->webhook().url());
    m.audit =
        Audit(caller, "webhook.deleted", rec->webhook().project_id(), "",
              StrCat(req.webhook_id(), url.ok() ? StrCat(" to ", url->origin()) : ""), absl::Now());
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  // Its progress goes with it; a deliverer still holding it stops at its
  // next look at the webhooks, and what it writes meanwhile is never read.
  store_->PutProgress(WebhookProgressKey(req.webhook_id()), std::nullopt, "").IgnoreError();
  return v1::DeleteWebhookResponse();
}

absl::StatusOr<v1::ListWebhookDeliveriesResponse> KeyAuthority::ListWebhookDeliveries(
    const Caller& caller, const v1::ListWebhookDeliveriesRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kWebhooks); !s.ok()) return s;
  if (absl::Status s = CheckWebhookId(req.webhook_id()); !s.ok()) return s;
  absl::StatusOr<std::optional<std::string>> row = store_->Get(Table::kWebhooks, req.webhook_id());
  if (!row.ok()) return row.status();
  if (!row->has_value()) {
    return absl::NotFoundError(StrCat("webhook ", req.webhook_id(), " not found"));
  }
  absl::StatusOr<WebhookProgress> progress = LoadWebhookProgress(*store_, req.webhook_id());
  if (!progress.ok()) return progress.status();
  v1::ListWebhookDeliveriesResponse resp;
  for (auto it = progress->deliveries().rbegin(); it != progress->deliveries().rend(); ++it) {
    *resp.add_deliveries() = *it;
  }
  return resp;
}

absl::StatusOr<std::vector<KeyAuthority::WebhookTarget>> KeyAuthority::WebhookTargets() const {
  absl::StatusOr<Page> page = store_->Scan(Table::kWebhooks, "", "", kMaxWebhooks);
  if (!page.ok()) return page.status();
  std::vector<WebhookTarget> targets;
  for (const Row& row : page->rows) {
    absl::StatusOr<WebhookTarget> target = OpenWebhook(row.value);
    if (!target.ok()) return target.status();
    targets.push_back(*std::move(target));
  }
  return targets;
}

absl::StatusOr<KeyAuthority::WebhookTarget> KeyAuthority::FindWebhookTarget(
    std::string_view webhook_id) const {
  if (absl::Status s = CheckWebhookId(webhook_id); !s.ok()) return s;
  absl::StatusOr<std::optional<std::string>> row = store_->Get(Table::kWebhooks, webhook_id);
  if (!row.ok()) return row.status();
  if (!row->has_value()) return absl::NotFoundError(StrCat("webhook ", webhook_id, " not found"));
  return OpenWebhook(**row);
}

absl::StatusOr<KeyAuthority::WebhookTarget> KeyAuthority::OpenWebhook(
    const std::string& row) const {
  absl::StatusOr<WebhookRecord> rec = ParseWebhook(row);
  if (!rec.ok()) return rec.status();
  absl::StatusOr<std::string> secret =
      sealer_.Open(rec->sealed_secret(), rec->webhook().webhook_id());
  if (!secret.ok()) return secret.status();
  return WebhookTarget{rec->webhook(), *std::move(secret), rec->start_revision()};
}

}  // namespace latchkey
