// Webhooks (docs/design.md, "Webhooks"): every key event pushed as a signed
// JSON POST to the URLs administrators register.
//
// Events come from the audit log by revision (KeyStore::AuditLog), the
// durable record of every change, so nothing needs queueing beside it: each
// webhook keeps a cursor, the revision it has delivered up to, in a progress
// row (KeyStore::PutProgress). Delivery is in revision order, one event at a
// time per webhook; an event the receiver does not answer with 2xx is tried
// again with exponential back-off, and later events wait behind it, so a
// receiver sees each key's events in order. The cursor moves only after a
// 2xx, so an authority that dies mid-delivery sends that event again:
// delivery is at least once, and the receiver dedupes by the event id,
// which is the same on every attempt. Among replicas over one store, the one
// that holds the "webhooks" duty (Replicas::Lead) delivers, and writes
// progress only while it holds it.
#ifndef LATCHKEY_AUTHORITY_WEBHOOKS_WEBHOOK_DELIVERY_H_
#define LATCHKEY_AUTHORITY_WEBHOOKS_WEBHOOK_DELIVERY_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "authority/core/key_authority.h"
#include "authority/core/webhooks.h"
#include "authority/internal/records.pb.h"
#include "authority/store/key_store.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "common/periodic.h"
#include "common/work_queue.h"
#include "latchkey/v1/resources.pb.h"

namespace latchkey {

// The event an audit action is delivered as, or nullopt for actions no
// webhook hears (reads, principals, webhooks themselves).
std::optional<std::string_view> WebhookEventOf(std::string_view audit_action);

// The Latchkey-Signature header of a delivery: "t=<unix seconds>,v1=<hex
// HMAC-SHA256(secret, "<t>.<body>")>".
std::string WebhookSignature(std::string_view secret, int64_t unix_seconds, std::string_view body);

// The body a webhook receives for an audit record (or a ping when `record`
// has no revision), in the webhook's format, with the event's id.
struct WebhookMessage {
  std::string event_id;  // evt_...
  std::string type;
  std::string body;
};
WebhookMessage WebhookMessageOf(const v1::Webhook& webhook, std::string_view type,
                                const v1::AuditEvent& record, std::string_view store_id);

struct WebhookDeliveryOptions {
  // The wait after a first failed attempt; it doubles after each one, up to
  // retry_max. Once an event has failed for failing_after, the webhook is
  // FAILING (it keeps trying every retry_max).
  absl::Duration retry_min = absl::Seconds(5);
  absl::Duration retry_max = absl::Hours(1);
  absl::Duration failing_after = absl::Hours(24);
  // One attempt, whole: connecting, sending, the answer. (A name lookup is
  // the system resolver's and not bounded by it.)
  absl::Duration timeout = absl::Seconds(10);
  // How often it looks for new work with nothing waking it (another
  // replica's commits, the duty moving).
  absl::Duration poll = absl::Seconds(1);
  // How often the replica holding the duty looks for keys entering a
  // key.expiring notice period (KeyAuthority::AnnounceExpiring).
  absl::Duration expiry_sweep = absl::Minutes(5);
  // Webhooks may deliver over plain HTTP beyond loopback (behind a TLS
  // proxy); checked again at each attempt, whatever a webhook was created
  // with.
  bool allow_insecure_remote = false;
};

// Delivers every webhook's events from the audit log while this process
// holds the "webhooks" duty. Thread-safe; `authority` and `store` must
// outlive it.
class WebhookDeliverer {
 public:
  WebhookDeliverer(KeyAuthority* authority, KeyStore* store, WebhookDeliveryOptions options,
                   Registry* metrics = nullptr);
  ~WebhookDeliverer();  // Stop()

  // Something was committed: look for work now (`webhooks_changed`: one
  // was created or deleted, so look at the set too). Quick; never blocks on
  // I/O.
  void Wake(bool webhooks_changed = false) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends delivery: every attempt in flight is cut at once (it is sent again
  // by whoever delivers next). Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // Sends a `ping` event to the webhook now (ADMIN) and answers how the
  // receiver took it. Not recorded among its deliveries.
  absl::StatusOr<v1::WebhookDelivery> Test(const Caller& caller, const v1::TestWebhookRequest& req);
  // The same on threads of its own (a slow receiver holds none of the
  // store's); `done` runs there.
  void TestAsync(const Caller& caller, const v1::TestWebhookRequest& req,
                 std::function<void(absl::StatusOr<v1::WebhookDelivery>)> done);

 private:
  class Lane;

  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // Starts a lane for each webhook, ends those of deleted ones (or all, when
  // another replica holds the duty).
  void Reconcile(bool leading);
  // Ends these lanes: all are told first, then each is joined.
  static void EndLanes(std::vector<std::unique_ptr<Lane>> lanes);

  KeyAuthority* const authority_;
  KeyStore* const store_;
  const WebhookDeliveryOptions options_;
  Counter* delivered_ = nullptr;
  Counter* failed_ = nullptr;
  std::atomic<bool> leading_{false};

  Mutex mu_;
  CondVar wake_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  bool changed_ ABSL_GUARDED_BY(mu_) = false;
  // Only the loop's thread touches the lanes.
  std::map<std::string, std::unique_ptr<Lane>> lanes_;
  WorkQueue pings_{2};
  std::thread thread_;
  std::unique_ptr<Periodic> sweep_;  // key.expiring, while leading
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_WEBHOOKS_WEBHOOK_DELIVERY_H_
