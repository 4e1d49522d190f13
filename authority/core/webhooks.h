// What the core knows of webhooks: the events a webhook may ask for and where
// its delivery progress is kept. Delivery itself is authority/webhooks/.
#ifndef LATCHKEY_AUTHORITY_CORE_WEBHOOKS_H_
#define LATCHKEY_AUTHORITY_CORE_WEBHOOKS_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "authority/internal/records.pb.h"
#include "authority/store/key_store.h"

namespace latchkey {

// The event types a webhook may ask for (Webhook.events).
inline constexpr std::string_view kWebhookEvents[] = {"key.created",
                                                      "key.revoked",
                                                      "key.rotated",
                                                      "key.deleted",
                                                      "key.leaked",
                                                      "key.expiring",
                                                      "project.api_access_changed",
                                                      "key.rejected_after_revocation"};

// A webhook's progress row (KeyAuthority::WebhookProgressKey); empty when
// none was written yet.
absl::StatusOr<internal::WebhookProgress> LoadWebhookProgress(const KeyStore& store,
                                                              std::string_view webhook_id);

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_CORE_WEBHOOKS_H_
