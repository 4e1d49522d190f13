// KeyAdmin over gRPC: authenticate, call KeyAuthority, convert the result.
#ifndef LATCHKEY_AUTHORITY_RPC_ADMIN_SERVICE_H_
#define LATCHKEY_AUTHORITY_RPC_ADMIN_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "authority/core/key_authority.h"
#include "authority/fanout/propagation.h"
#include "authority/webhooks/webhook_delivery.h"
#include "common/work_queue.h"
#include "latchkey/v1/key_admin.grpc.pb.h"

namespace latchkey {

// The bearer token of a call ("authorization: Bearer <token>"), or "".
std::string BearerToken(const grpc::ServerContextBase& context);

// The caller of `context`, authenticated against `authority`.
absl::StatusOr<Caller> AuthenticateCall(const KeyAuthority& authority,
                                        const grpc::ServerContextBase& context);

// Thread-safe; everything passed in must outlive the service. Calls that
// reach the store run on `store_work`, never on gRPC's callback threads.
class AdminService final : public v1::KeyAdmin::CallbackService {
 public:
  // `store` is `authority`'s, read for receipts across replicas; `webhooks`
  // sends TestWebhook's pings (null: that call is UNAVAILABLE).
  AdminService(KeyAuthority* authority, KeyStore* store, const PropagationTracker* propagation,
               WorkQueue* store_work, WebhookDeliverer* webhooks = nullptr)
      : authority_(authority),
        store_(store),
        propagation_(propagation),
        store_work_(store_work),
        webhooks_(webhooks) {}

  using Ctx = grpc::CallbackServerContext;
  using Reactor = grpc::ServerUnaryReactor;

  Reactor* CreateProject(Ctx* c, const v1::CreateProjectRequest* q,
                         v1::CreateProjectResponse* r) override;
  Reactor* GetProject(Ctx* c, const v1::GetProjectRequest* q, v1::Project* r) override;
  Reactor* ListProjects(Ctx* c, const v1::ListProjectsRequest* q,
                        v1::ListProjectsResponse* r) override;
  Reactor* SetApiAccess(Ctx* c, const v1::SetApiAccessRequest* q, v1::Project* r) override;
  Reactor* GenerateApiKey(Ctx* c, const v1::GenerateApiKeyRequest* q,
                          v1::GenerateApiKeyResponse* r) override;
  Reactor* GetApiKeyValue(Ctx* c, const v1::GetApiKeyValueRequest* q,
                          v1::GetApiKeyValueResponse* r) override;
  Reactor* RevokeApiKey(Ctx* c, const v1::RevokeApiKeyRequest* q, v1::Key* r) override;
  Reactor* RotateApiKey(Ctx* c, const v1::RotateApiKeyRequest* q,
                        v1::RotateApiKeyResponse* r) override;
  Reactor* GenerateSecretKey(Ctx* c, const v1::GenerateSecretKeyRequest* q,
                             v1::GenerateSecretKeyResponse* r) override;
  Reactor* DeleteSecretKey(Ctx* c, const v1::DeleteSecretKeyRequest* q,
                           v1::DeleteSecretKeyResponse* r) override;
  Reactor* GetKey(Ctx* c, const v1::GetKeyRequest* q, v1::Key* r) override;
  Reactor* ListKeys(Ctx* c, const v1::ListKeysRequest* q, v1::ListKeysResponse* r) override;
  Reactor* ListAuditEvents(Ctx* c, const v1::ListAuditEventsRequest* q,
                           v1::ListAuditEventsResponse* r) override;
  Reactor* CreatePrincipal(Ctx* c, const v1::CreatePrincipalRequest* q,
                           v1::CreatePrincipalResponse* r) override;
  Reactor* ListPrincipals(Ctx* c, const v1::ListPrincipalsRequest* q,
                          v1::ListPrincipalsResponse* r) override;
  Reactor* DeletePrincipal(Ctx* c, const v1::DeletePrincipalRequest* q,
                           v1::DeletePrincipalResponse* r) override;
  Reactor* GetPropagation(Ctx* c, const v1::GetPropagationRequest* q,
                          v1::GetPropagationResponse* r) override;
  Reactor* WhoAmI(Ctx* c, const v1::WhoAmIRequest* q, v1::Principal* r) override;
  Reactor* FindKey(Ctx* c, const v1::FindKeyRequest* q, v1::Key* r) override;
  Reactor* SetLeakPolicy(Ctx* c, const v1::SetLeakPolicyRequest* q, v1::Project* r) override;
  Reactor* CreateWebhook(Ctx* c, const v1::CreateWebhookRequest* q,
                         v1::CreateWebhookResponse* r) override;
  Reactor* ListWebhooks(Ctx* c, const v1::ListWebhooksRequest* q,
                        v1::ListWebhooksResponse* r) override;
  Reactor* DeleteWebhook(Ctx* c, const v1::DeleteWebhookRequest* q,
                         v1::DeleteWebhookResponse* r) override;
  Reactor* ListWebhookDeliveries(Ctx* c, const v1::ListWebhookDeliveriesRequest* q,
                                 v1::ListWebhookDeliveriesResponse* r) override;
  Reactor* TestWebhook(Ctx* c, const v1::TestWebhookRequest* q, v1::WebhookDelivery* r) override;
  Reactor* CreateRoleBinding(Ctx* c, const v1::CreateRoleBindingRequest* q,
                             v1::RoleBinding* r) override;
  Reactor* ListRoleBindings(Ctx* c, const v1::ListRoleBindingsRequest* q,
                            v1::ListRoleBindingsResponse* r) override;
  Reactor* DeleteRoleBinding(Ctx* c, const v1::DeleteRoleBindingRequest* q,
                             v1::DeleteRoleBindingResponse* r) override;

 private:
  // Authenticates, then runs `method` of the core on store_work_, which
  // finishes the call.
  template <typename Req, typename Resp, typename Method>
  Reactor* Unary(Ctx* ctx, const Req* req, Resp* resp, Method method);
  // The receipt for `revision` over the sidecars of every replica.
  absl::StatusOr<v1::GetPropagationResponse> Receipt(uint64_t revision) const;

  KeyAuthority* const authority_;
  KeyStore* const store_;
  const PropagationTracker* const propagation_;
  WorkQueue* const store_work_;
  WebhookDeliverer* const webhooks_;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_RPC_ADMIN_SERVICE_H_
