// Webhooks against a real HTTP receiver on loopback: what is delivered, how
// it is signed, and what happens while the receiver is down. Runs on both
// stores (tests/testing/test_store.h).
#include <httplib.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_split.h"
#include "authority/internal/records.pb.h"
#include "authority/webhooks/webhook_delivery.h"
#include "common/http.h"
#include "common/time_util.h"
#include "tests/testing/authority_fixture.h"
#include "tests/testing/testing.h"
#include "tests/testing/webhook_receiver.h"

namespace latchkey {
namespace {

using nlohmann::json;
using testing::AuthorityFixture;
using testing::Eventually;

using Receiver = testing::WebhookReceiver;

WebhookDeliveryOptions Fast() {
  WebhookDeliveryOptions o;
  o.poll = absl::Milliseconds(20);
  o.retry_min = absl::Milliseconds(20);
  o.retry_max = absl::Milliseconds(80);
  o.timeout = absl::Seconds(5);
  return o;
}

v1::CreateWebhookResponse Create(AuthorityFixture& f, const std::string& url,
                                 std::vector<std::string> events, const std::string& project = "",
                                 v1::WebhookFormat format = v1::WEBHOOK_FORMAT_JSON) {
  v1::CreateWebhookRequest req;
  req.set_url(url);
  for (const std::string& e : events) req.add_events(e);
  req.set_project_id(project);
  req.set_format(format);
  absl::StatusOr<v1::CreateWebhookResponse> made = f.authority().CreateWebhook(f.admin(), req);
  INFO(made.status());
  REQUIRE(made.ok());
  return *made;
}

// What a receiver does with Latchkey-Signature: recompute, compare.
bool Verifies(const std::string& secret, const Receiver::Request& r) {
  std::vector<std::string> parts = absl::StrSplit(r.signature, ',');
  if (parts.size() != 2 || !parts[0].starts_with("t=") || !parts[1].starts_with("v1=")) {
    return false;
  }
  const int64_t t = std::stoll(parts[0].substr(2));
  return WebhookSignature(secret, t, r.body) == r.signature;
}

std::string Revoke(AuthorityFixture& f, const std::string& key_id) {
  v1::RevokeApiKeyRequest req;
  req.set_key_id(key_id);
  REQUIRE(f.authority().RevokeApiKey(f.manager(), req).ok());
  return key_id;
}

TEST_CASE("the signature is HMAC-SHA256 of the timestamp, a dot and the body, in hex") {
  // Computed independently: Python's hmac.new(secret, b"1700000000.<body>", sha256).
  CHECK(
      WebhookSignature("whsec_0123456789abcdefghijklmnopqrstuv", 1700000000, R"({"id":"evt_1"})") ==
      "t=1700000000,v1=03ae817788064aafa0663c12dfcde0472680b0d6f9edc892cfc717414281d09d");
  CHECK(
      WebhookSignature("whsec_another", 1700000000, R"({"id":"evt_1"})") !=
      WebhookSignature("whsec_0123456789abcdefghijklmnopqrstuv", 1700000000, R"({"id":"evt_1"})"));
}

TEST_CASE("audit actions map to the webhook events people subscribe to") {
  CHECK(WebhookEventOf("key.revoked") == "key.revoked");
  CHECK(WebhookEventOf("key.leaked") == "key.leaked");
  CHECK(WebhookEventOf("project.api_access_disabled") == "project.api_access_changed");
  CHECK(WebhookEventOf("project.api_access_enabled") == "project.api_access_changed");
  CHECK_FALSE(WebhookEventOf("key.value_read").has_value());
  CHECK_FALSE(WebhookEventOf("principal.created").has_value());
  CHECK_FALSE(WebhookEventOf("webhook.created").has_value());
}

TEST_CASE("a webhook receives the events it asked for, signed, once each, in order") {
  AuthorityFixture f;
  Receiver receiver;
  const v1::CreateWebhookResponse hook = Create(f, receiver.url(), {"key.created", "key.revoked"});
  CHECK(hook.secret().starts_with("whsec_"));
  CHECK(hook.secret().size() == 6 + 32);
  CHECK(hook.webhook().webhook_id().starts_with("whk_"));
  WebhookDeliverer deliverer(&f.authority(), &f.store(), Fast());

  const std::string project = f.CreateProject().project().project_id();  // not asked for
  const std::string a = f.GenerateApiKey(project, "a")->key().key_id();
  const std::string b = f.GenerateApiKey(project, "b")->key().key_id();
  Revoke(f, a);
  v1::SetApiAccessRequest off;  // not asked for
  off.set_project_id(project);
  off.set_enabled(false);
  REQUIRE(f.authority().SetApiAccess(f.manager(), off).ok());

  REQUIRE(Eventually([&] { return receiver.delivered().size() >= 3; }));
  deliverer.Stop();
  const std::vector<json> got = receiver.delivered();
  REQUIRE(got.size() == 3);
  CHECK(got[0]["type"] == "key.created");
  CHECK(got[0]["data"]["key_id"] == a);
  CHECK(got[1]["type"] == "key.created");
  CHECK(got[1]["data"]["key_id"] == b);
  CHECK(got[2]["type"] == "key.revoked");
  CHECK(got[2]["data"]["key_id"] == a);
  CHECK(got[2]["data"]["project_id"] == project);
  CHECK(got[2]["data"]["actor"] == "maria");
  std::set<std::string> ids;
  for (const json& e : got) {
    CHECK(e["id"].get<std::string>().starts_with("evt_"));
    ids.insert(e["id"]);
    CHECK(e["created"].get<int64_t>() > 1700000000);
  }
  CHECK(ids.size() == 3);
  CHECK(got[0]["data"]["revision"].get<uint64_t>() < got[1]["data"]["revision"].get<uint64_t>());
  for (const Receiver::Request& r : receiver.got()) {
    CHECK(Verifies(hook.secret(), r));
    CHECK_FALSE(Verifies("whsec_not_the_secret", r));
  }
  // Nothing of a key's value travels.
  for (const Receiver::Request& r : receiver.got()) {
    CHECK(r.body.find("lkp_") == std::string::npos);
  }
}

TEST_CASE("a webhook of one project hears only that project, in Slack's format when asked") {
  AuthorityFixture f;
  Receiver receiver;
  const std::string mine = f.CreateProject("mine").project().project_id();
  const std::string other = f.CreateProject("other").project().project_id();
  Create(f, receiver.url(), {"key.created"}, mine, v1::WEBHOOK_FORMAT_SLACK);
  WebhookDeliverer deliverer(&f.authority(), &f.store(), Fast());
  REQUIRE(f.GenerateApiKey(other, "theirs").ok());
  const std::string key = f.GenerateApiKey(mine, "ours")->key().key_id();
  REQUIRE(Eventually([&] { return !receiver.delivered().empty(); }));
  // The other project's key came first in the log; had it been sent, it would be first.
  const json first = receiver.delivered().front();
  CHECK(first.size() == 1);
  const std::string text = first["text"];
  CHECK(text.find("key.created") != std::string::npos);
  CHECK(text.find(key) != std::string::npos);
  CHECK(text.find(mine) != std::string::npos);
}

TEST_CASE("a receiver that is down gets every event later, in order, none twice once answered") {
  AuthorityFixture f;
  Receiver receiver;
  receiver.Answer(503);
  const v1::CreateWebhookResponse hook = Create(f, receiver.url(), {"key.created", "key.revoked"});
  const std::string id = hook.webhook().webhook_id();
  WebhookDeliverer deliverer(&f.authority(), &f.store(), Fast());
  const std::string project = f.CreateProject().project().project_id();
  std::vector<std::string> keys;
  for (int i = 0; i < 4; ++i) keys.push_back(f.GenerateApiKey(project, "k")->key().key_id());
  Revoke(f, keys[1]);

  // Refused, retried: the webhook says so, and its deliveries show each try.
  REQUIRE(Eventually([&] { return receiver.got().size() >= 3; }));
  v1::ListWebhooksResponse listed = *f.authority().ListWebhooks(f.admin(), {});
  REQUIRE(listed.webhooks_size() == 1);
  CHECK(listed.webhooks(0).status() == v1::WEBHOOK_STATUS_RETRYING);
  CHECK(listed.webhooks(0).last_error() == "answered HTTP 503");
  v1::ListWebhookDeliveriesRequest dreq;
  dreq.set_webhook_id(id);
  v1::ListWebhookDeliveriesResponse tries = *f.authority().ListWebhookDeliveries(f.admin(), dreq);
  REQUIRE(tries.deliveries_size() >= 2);
  CHECK(tries.deliveries(0).status_code() == 503);
  CHECK(tries.deliveries(0).attempt() > tries.deliveries(1).attempt());     // newest first
  CHECK(tries.deliveries(0).event_id() == tries.deliveries(1).event_id());  // the same event
  CHECK(tries.deliveries(0).event_type() == "key.created");

  receiver.Answer(200);
  REQUIRE(Eventually([&] { return receiver.delivered().size() >= 5; }));
  deliverer.Stop();
  const std::vector<json> got = receiver.delivered();
  REQUIRE(got.size() == 5);
  std::vector<std::string> order;
  for (const json& e : got)
    order.push_back(
        StrCat(e["type"].get<std::string>(), " ", e["data"]["key_id"].get<std::string>()));
  CHECK(order == std::vector<std::string>{"key.created " + keys[0], "key.created " + keys[1],
                                          "key.created " + keys[2], "key.created " + keys[3],
                                          "key.revoked " + keys[1]});
  // Every attempt of one event carried one id.
  std::set<std::string> refused_ids;
  for (const Receiver::Request& r : receiver.got()) {
    if (r.answered == 503) refused_ids.insert(json::parse(r.body)["id"].get<std::string>());
  }
  CHECK(refused_ids.size() == 1);
  CHECK(refused_ids.count(got[0]["id"]) == 1);
  listed = *f.authority().ListWebhooks(f.admin(), {});
  CHECK(listed.webhooks(0).status() == v1::WEBHOOK_STATUS_HEALTHY);
  CHECK(listed.webhooks(0).last_error().empty());
}

TEST_CASE("an event refused past the give-up period marks its webhook FAILING until a 2xx") {
  AuthorityFixture f;
  Receiver receiver;
  receiver.Answer(500);
  Create(f, receiver.url(), {"key.created"});
  WebhookDeliveryOptions options = Fast();
  options.failing_after = absl::Milliseconds(150);
  WebhookDeliverer deliverer(&f.authority(), &f.store(), options);
  REQUIRE(f.GenerateApiKey(f.CreateProject().project().project_id()).ok());
  auto status = [&] { return f.authority().ListWebhooks(f.admin(), {})->webhooks(0).status(); };
  REQUIRE(Eventually([&] { return status() == v1::WEBHOOK_STATUS_FAILING; }));
  receiver.Answer(204);
  REQUIRE(Eventually([&] { return status() == v1::WEBHOOK_STATUS_HEALTHY; }));
  CHECK(receiver.delivered().size() == 1);
}

TEST_CASE("a deliverer that stops resumes where the last one left off") {
  AuthorityFixture f;
  Receiver receiver;
  const std::string id = Create(f, receiver.url(), {"key.created"}).webhook().webhook_id();
  const std::string project = f.CreateProject().project().project_id();
  {
    WebhookDeliverer first(&f.authority(), &f.store(), Fast());
    REQUIRE(f.GenerateApiKey(project, "one").ok());
    REQUIRE(f.GenerateApiKey(project, "two").ok());
    REQUIRE(Eventually([&] { return receiver.delivered().size() == 2; }));
    // Stopped once both are recorded as delivered: a stop during an attempt
    // sends that event again (the SIGKILL e2e test shows it).
    REQUIRE(Eventually([&] {
      v1::ListWebhookDeliveriesRequest dreq;
      dreq.set_webhook_id(id);
      return f.authority().ListWebhookDeliveries(f.admin(), dreq)->deliveries_size() == 2;
    }));
  }
  REQUIRE(f.GenerateApiKey(project, "three").ok());  // while no deliverer runs
  WebhookDeliverer second(&f.authority(), &f.store(), Fast());
  REQUIRE(Eventually([&] { return receiver.delivered().size() >= 3; }));
  second.Stop();
  const std::vector<json> got = receiver.delivered();
  REQUIRE(got.size() == 3);  // the first two were not sent again
  std::set<std::string> ids;
  for (const json& e : got) ids.insert(e["id"]);
  CHECK(ids.size() == 3);
}

TEST_CASE("a receiver that holds a delivery past the timeout is cut off and tried again") {
  AuthorityFixture f;
  Receiver receiver;
  const std::string id = Create(f, receiver.url(), {"key.created"}).webhook().webhook_id();
  WebhookDeliveryOptions options = Fast();
  options.timeout = absl::Milliseconds(200);
  WebhookDeliverer deliverer(&f.authority(), &f.store(), options);
  receiver.Hold();
  REQUIRE(f.GenerateApiKey(f.CreateProject().project().project_id()).ok());
  v1::ListWebhookDeliveriesRequest dreq;
  dreq.set_webhook_id(id);
  REQUIRE(Eventually(
      [&] { return f.authority().ListWebhookDeliveries(f.admin(), dreq)->deliveries_size() > 0; }));
  const v1::WebhookDelivery cut =
      f.authority().ListWebhookDeliveries(f.admin(), dreq)->deliveries(0);
  CHECK(cut.error() == "no answer within 200ms");
  CHECK(cut.status_code() == 0);
  receiver.Release();
  REQUIRE(Eventually([&] {
    const v1::ListWebhookDeliveriesResponse d =
        *f.authority().ListWebhookDeliveries(f.admin(), dreq);
    return d.deliveries_size() > 0 && d.deliveries(0).error().empty();
  }));
}

TEST_CASE("stopping the deliverer cuts the attempt in flight, and the event is sent again later") {
  AuthorityFixture f;
  Receiver receiver;
  Create(f, receiver.url(), {"key.created"});
  WebhookDeliveryOptions options = Fast();
  options.timeout = absl::Seconds(60);
  auto deliverer = std::make_unique<WebhookDeliverer>(&f.authority(), &f.store(), options);
  receiver.Hold();
  REQUIRE(f.GenerateApiKey(f.CreateProject().project().project_id()).ok());
  REQUIRE(Eventually([&] { return receiver.arrived() == 1; }));
  const absl::Time asked = absl::Now();
  deliverer.reset();  // does not wait out the minute
  CHECK(absl::Now() - asked < absl::Seconds(30));
  receiver.Release();
  receiver.Answer(200);
  WebhookDeliverer next(&f.authority(), &f.store(), Fast());
  REQUIRE(Eventually([&] { return receiver.delivered().size() >= 2; }));
  const std::vector<json> got = receiver.delivered();
  CHECK(got[0]["id"] == got[1]["id"]);  // the cut one, then the same again
}

TEST_CASE("a webhook to plain HTTP beyond loopback is not delivered where that is not allowed") {
  KeyAuthorityOptions lax;
  lax.webhooks_allow_insecure_remote = true;
  AuthorityFixture f(lax);
  const std::string id =
      Create(f, "http://192.0.2.1:9/hook", {"key.created"}).webhook().webhook_id();
  WebhookDeliverer deliverer(&f.authority(), &f.store(), Fast());  // not allowed here
  REQUIRE(f.GenerateApiKey(f.CreateProject().project().project_id()).ok());
  v1::ListWebhookDeliveriesRequest dreq;
  dreq.set_webhook_id(id);
  REQUIRE(Eventually(
      [&] { return f.authority().ListWebhookDeliveries(f.admin(), dreq)->deliveries_size() > 0; }));
  CHECK(f.authority()
            .ListWebhookDeliveries(f.admin(), dreq)
            ->deliveries(0)
            .error()
            .find("--allow-insecure-remote") != std::string::npos);
}

TEST_CASE("a deleted webhook gets nothing more and its deliveries are gone") {
  AuthorityFixture f;
  Receiver receiver;
  const std::string id = Create(f, receiver.url(), {"key.created"}).webhook().webhook_id();
  WebhookDeliverer deliverer(&f.authority(), &f.store(), Fast());
  const std::string project = f.CreateProject().project().project_id();
  REQUIRE(f.GenerateApiKey(project).ok());
  REQUIRE(Eventually([&] { return receiver.delivered().size() == 1; }));
  v1::DeleteWebhookRequest del;
  del.set_webhook_id(id);
  REQUIRE(f.authority().DeleteWebhook(f.admin(), del).ok());
  CHECK(absl::IsNotFound(f.authority().DeleteWebhook(f.admin(), del).status()));
  REQUIRE(f.GenerateApiKey(project, "after").ok());
  // Long enough for several polls of the deliverer.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(receiver.got().size() == 1);
  v1::ListWebhookDeliveriesRequest dreq;
  dreq.set_webhook_id(id);
  CHECK(absl::IsNotFound(f.authority().ListWebhookDeliveries(f.admin(), dreq).status()));
  CHECK(f.authority().ListWebhooks(f.admin(), {})->webhooks().empty());
  CHECK_FALSE(f.store().GetProgress(KeyAuthority::WebhookProgressKey(id))->has_value());
  const std::vector<v1::AuditEvent> audit = *f.store().AuditEvents("", 0, 1000);
  REQUIRE(audit.size() >= 2);
  CHECK(audit.back().action() == "webhook.deleted");
}

TEST_CASE("a test delivery pings the receiver and says how it answered") {
  AuthorityFixture f;
  Receiver receiver;
  const v1::CreateWebhookResponse hook = Create(f, receiver.url(), {"key.leaked"});
  WebhookDeliverer deliverer(&f.authority(), &f.store(), Fast());
  v1::TestWebhookRequest req;
  req.set_webhook_id(hook.webhook().webhook_id());
  absl::StatusOr<v1::WebhookDelivery> ok = deliverer.Test(f.admin(), req);
  REQUIRE(ok.ok());
  CHECK(ok->status_code() == 200);
  CHECK(ok->error().empty());
  CHECK(ok->event_type() == "ping");
  REQUIRE(receiver.got().size() == 1);
  CHECK(json::parse(receiver.got()[0].body)["type"] == "ping");
  CHECK(Verifies(hook.secret(), receiver.got()[0]));
  receiver.Answer(410);
  absl::StatusOr<v1::WebhookDelivery> gone = deliverer.Test(f.admin(), req);
  REQUIRE(gone.ok());
  CHECK(gone->status_code() == 410);
  CHECK(gone->error() == "answered HTTP 410");
  CHECK(deliverer.Test(f.manager(), req).status().code() == absl::StatusCode::kPermissionDenied);
  req.set_webhook_id("whk_0000000000000000");
  CHECK(absl::IsNotFound(deliverer.Test(f.admin(), req).status()));
}

TEST_CASE("creating a webhook checks its URL, events, format, project and the caller") {
  AuthorityFixture f;
  auto create = [&](const std::string& url, std::vector<std::string> events,
                    const std::string& project = "", const Caller* caller = nullptr) {
    v1::CreateWebhookRequest req;
    req.set_url(url);
    for (const std::string& e : events) req.add_events(e);
    req.set_project_id(project);
    return f.authority().CreateWebhook(caller ? *caller : f.admin(), req).status();
  };
  const uint64_t head = f.store().head_revision();
  CHECK(create("ftp://example.com/x", {"key.revoked"}).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(create("http://example.com/hook", {"key.revoked"}).code() ==
        absl::StatusCode::kInvalidArgument);  // plain HTTP beyond loopback
  CHECK(create("https://user:pw@example.com/hook", {"key.revoked"}).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(create("https://example.com:99999/hook", {"key.revoked"}).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(create("https://example.com/hook", {}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(create("https://example.com/hook", {"key.exploded"}).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(create("https://example.com/hook", {"key.revoked"}, "prj_000000000000").code() ==
        absl::StatusCode::kNotFound);
  CHECK(create("https://example.com/hook", {"key.revoked"}, "", &f.manager()).code() ==
        absl::StatusCode::kPermissionDenied);
  CHECK(f.store().head_revision() == head);  // nothing changed
  CHECK(create("https://example.com/hook", {"key.revoked", "key.revoked"}).ok());
  CHECK(f.authority().ListWebhooks(f.admin(), {})->webhooks(0).events_size() == 1);
  CHECK(f.authority().ListWebhooks(f.manager(), {}).status().code() ==
        absl::StatusCode::kPermissionDenied);
}

TEST_CASE("a webhook's signing secret is stored sealed, and its URL's path stays out of audit") {
  AuthorityFixture f;
  const v1::CreateWebhookResponse hook =
      Create(f, "https://hooks.example.com/services/T0/B0/sekritpath", {"key.leaked"});
  CHECK(f.StoredCopiesOf(hook.secret()).empty());
  const std::vector<v1::AuditEvent> audit = *f.store().AuditEvents("", 0, 1000);
  REQUIRE_FALSE(audit.empty());
  CHECK(audit.back().action() == "webhook.created");
  CHECK(audit.back().detail().find("https://hooks.example.com:443") != std::string::npos);
  CHECK(audit.back().detail().find("sekritpath") == std::string::npos);
  // Only ADMINs reach it, and the list shows the URL to them.
  CHECK(f.authority().ListWebhooks(f.admin(), {})->webhooks(0).url() ==
        "https://hooks.example.com/services/T0/B0/sekritpath");
}

TEST_CASE("the audit log by revision holds every project's records in order") {
  AuthorityFixture f;
  const uint64_t before = f.store().head_revision();
  const std::string a = f.CreateProject("a").project().project_id();
  const std::string b = f.CreateProject("b").project().project_id();
  REQUIRE(f.GenerateApiKey(a).ok());
  absl::StatusOr<std::vector<v1::AuditEvent>> log = f.store().AuditLog(before, 100);
  REQUIRE(log.ok());
  REQUIRE(log->size() == 3);
  CHECK((*log)[0].project_id() == a);
  CHECK((*log)[1].project_id() == b);
  CHECK((*log)[2].action() == "key.created");
  CHECK((*log)[2].revision() == before + 3);
  CHECK(f.store().AuditLog(before + 1, 1)->size() == 1);
  CHECK(f.store().AuditLog(before + 3, 100)->empty());
}

std::vector<v1::AuditEvent> Notices(AuthorityFixture& f, const std::string& project,
                                    const std::string& action) {
  std::vector<v1::AuditEvent> out;
  const std::vector<v1::AuditEvent> all = *f.store().AuditEvents(project, 0, 1000);
  for (const v1::AuditEvent& e : all) {
    if (e.action() == action) out.push_back(e);
  }
  return out;
}

TEST_CASE("a key is announced as expiring once in each notice period, and so is a grace's end") {
  AuthorityFixture f;
  const absl::Time now = absl::Now();
  const std::string project = f.CreateProject().project().project_id();
  v1::GenerateApiKeyRequest gen;
  gen.set_project_id(project);
  gen.set_name("short-lived");
  *gen.mutable_expire_time() = ToProto(now + absl::Hours(24 * 3));
  const std::string key = f.authority().GenerateApiKey(f.manager(), gen)->key().key_id();
  gen.set_name("far off");
  *gen.mutable_expire_time() = ToProto(now + absl::Hours(24 * 30));
  REQUIRE(f.authority().GenerateApiKey(f.manager(), gen).ok());
  gen.set_name("revoked");
  *gen.mutable_expire_time() = ToProto(now + absl::Hours(24 * 3));
  Revoke(f, f.authority().GenerateApiKey(f.manager(), gen)->key().key_id());

  CHECK(*f.authority().AnnounceExpiring(now) == 1);  // inside its 7 days
  CHECK(*f.authority().AnnounceExpiring(now) == 0);  // said already
  std::vector<v1::AuditEvent> said = Notices(f, project, "key.expiring");
  REQUIRE(said.size() == 1);
  CHECK(said[0].key_id() == key);
  CHECK(said[0].actor() == "latchkey");
  CHECK(said[0].detail().find("in under 7 days") != std::string::npos);
  CHECK(*f.authority().AnnounceExpiring(now + absl::Hours(24 * 2 + 1)) == 1);  // its last day
  CHECK(*f.authority().AnnounceExpiring(now + absl::Hours(24 * 2 + 2)) == 0);
  CHECK(*f.authority().AnnounceExpiring(now + absl::Hours(24 * 4)) == 0);  // expired: nothing
  said = Notices(f, project, "key.expiring");
  REQUIRE(said.size() == 2);
  CHECK(said[1].detail().find("in under 1 day") != std::string::npos);

  // The legacy key rotated with two days' grace: its old value's last day is announced.
  v1::RotateApiKeyRequest rotate;
  for (const v1::Key& k : f.ListKeys(project)) {
    if (k.legacy()) rotate.set_key_id(k.key_id());
  }
  *rotate.mutable_grace_period() = ToProto(absl::Hours(48));
  REQUIRE(f.authority().RotateApiKey(f.manager(), rotate).ok());
  CHECK(*f.authority().AnnounceExpiring(absl::Now()) == 0);  // a grace begins quietly
  CHECK(*f.authority().AnnounceExpiring(absl::Now() + absl::Hours(25)) == 1);  // its last day
  CHECK(*f.authority().AnnounceExpiring(absl::Now() + absl::Hours(26)) == 0);
  said = Notices(f, project, "key.expiring");
  REQUIRE(said.size() == 3);
  CHECK(said[2].key_id() == rotate.key_id());
  CHECK(said[2].detail().find("before rotation stops at") != std::string::npos);
  CHECK(said[2].detail().find("in under 1 day") != std::string::npos);
}

TEST_CASE("a revoked key still sent is announced at most hourly, with who sends it") {
  AuthorityFixture f;
  const Caller sidecar{"prn_sidecar", "sidecar", v1::ROLE_SIDECAR};
  const std::string project = f.CreateProject().project().project_id();
  const std::string key = Revoke(f, f.GenerateApiKey(project)->key().key_id());
  auto report = [&](const std::string& sidecar_id) {
    v1::ReportUsageRequest r;
    r.set_sidecar_id(sidecar_id);
    v1::KeyUsage* u = r.add_usage();
    u->set_key_id(key);
    u->set_rejected_count(3);
    *u->mutable_last_rejected_time() = ToProto(absl::Now());
    REQUIRE(f.authority().RecordUsage(sidecar, r).ok());
    REQUIRE(f.authority().FlushUsage().ok());
  };
  report("pod-a");
  std::vector<v1::AuditEvent> said = Notices(f, project, "key.rejected_after_revocation");
  REQUIRE(said.size() == 1);
  CHECK(said[0].key_id() == key);
  CHECK(said[0].detail() == "sent 3 times since its revocation, by sidecars pod-a");
  report("pod-b");  // within the hour
  CHECK(Notices(f, project, "key.rejected_after_revocation").size() == 1);
  // An active key's rejections (an expired one, say) are not this event.
  const std::string active = f.GenerateApiKey(project, "active")->key().key_id();
  v1::ReportUsageRequest r;
  r.set_sidecar_id("pod-a");
  r.add_usage()->set_key_id(active);
  r.mutable_usage(0)->set_rejected_count(1);
  REQUIRE(f.authority().RecordUsage(sidecar, r).ok());
  REQUIRE(f.authority().FlushUsage().ok());
  CHECK(Notices(f, project, "key.rejected_after_revocation").size() == 1);
}

TEST_CASE("a webhook hears keys expiring from the deliverer's own sweep") {
  AuthorityFixture f;
  Receiver receiver;
  Create(f, receiver.url(), {"key.expiring"});
  const std::string project = f.CreateProject().project().project_id();
  v1::GenerateApiKeyRequest gen;
  gen.set_project_id(project);
  gen.set_name("soon");
  *gen.mutable_expire_time() = ToProto(absl::Now() + absl::Hours(12));
  const std::string key = f.authority().GenerateApiKey(f.manager(), gen)->key().key_id();
  WebhookDeliveryOptions options = Fast();
  options.expiry_sweep = absl::Milliseconds(50);
  WebhookDeliverer deliverer(&f.authority(), &f.store(), options);
  REQUIRE(Eventually([&] { return !receiver.delivered().empty(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // several sweeps
  deliverer.Stop();
  const std::vector<json> got = receiver.delivered();
  REQUIRE(got.size() == 1);
  CHECK(got[0]["type"] == "key.expiring");
  CHECK(got[0]["data"]["key_id"] == key);
  CHECK(got[0]["data"]["actor"] == "latchkey");
}

}  // namespace
}  // namespace latchkey
