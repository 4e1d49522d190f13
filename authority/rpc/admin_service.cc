#include "authority/rpc/admin_service.h"

#include "common/bearer.h"
#include "common/status.h"

namespace latchkey {

std::string BearerToken(const grpc::ServerContextBase& context) {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return "";
  const std::optional<std::string_view> token =
      latchkey::BearerToken(std::string_view(it->second.data(), it->second.size()));
  return token ? std::string(*token) : "";
}

absl::StatusOr<Caller> AuthenticateCall(const KeyAuthority& authority,
                                        const grpc::ServerContextBase& context) {
  return authority.Authenticate(BearerToken(context));
}

template <typename Req, typename Resp, typename Method>
AdminService::Reactor* AdminService::Unary(Ctx* ctx, const Req* req, Resp* resp, Method method) {
  Reactor* reactor = ctx->DefaultReactor();
  // A principal token is looked up here, in memory, so a call without a
  // valid one never takes a store thread. An ID token is verified on the
  // store's threads: a key not yet seen is fetched from the issuer, which
  // must not hold up gRPC's.
  std::optional<Caller> known;
  if (!IsIdTokenShaped(BearerToken(*ctx))) {
    absl::StatusOr<Caller> caller = AuthenticateCall(*authority_, *ctx);
    if (!caller.ok()) {
      reactor->Finish(ToGrpcStatus(caller.status()));
      return reactor;
    }
    known = *std::move(caller);
  }
  // The request and response live until Finish, so the task may use them.
  store_work_->Post([this, ctx, reactor, req, resp, method, known = std::move(known)] {
    absl::StatusOr<Caller> caller = known ? *known : AuthenticateCall(*authority_, *ctx);
    if (!caller.ok()) {
      reactor->Finish(ToGrpcStatus(caller.status()));
      return;
    }
    auto result = (authority_->*method)(*caller, *req);
    if (result.ok()) *resp = *std::move(result);
    reactor->Finish(ToGrpcStatus(result.status()));
  });
  return reactor;
}

#define LATCHKEY_UNARY(Method, Req, Resp)                                      \
  AdminService::Reactor* AdminService::Method(Ctx* c, const Req* q, Resp* r) { \
    return Unary(c, q, r, &KeyAuthority::Method);                              \
  }

LATCHKEY_UNARY(CreateProject, v1::CreateProjectRequest, v1::CreateProjectResponse)
LATCHKEY_UNARY(GetProject, v1::GetProjectRequest, v1::Project)
LATCHKEY_UNARY(ListProjects, v1::ListProjectsRequest, v1::ListProjectsResponse)
LATCHKEY_UNARY(SetApiAccess, v1::SetApiAccessRequest, v1::Project)
LATCHKEY_UNARY(GenerateApiKey, v1::GenerateApiKeyRequest, v1::GenerateApiKeyResponse)
LATCHKEY_UNARY(GetApiKeyValue, v1::GetApiKeyValueRequest, v1::GetApiKeyValueResponse)
LATCHKEY_UNARY(RevokeApiKey, v1::RevokeApiKeyRequest, v1::Key)
LATCHKEY_UNARY(RotateApiKey, v1::RotateApiKeyRequest, v1::RotateApiKeyResponse)
LATCHKEY_UNARY(GenerateSecretKey, v1::GenerateSecretKeyRequest, v1::GenerateSecretKeyResponse)
LATCHKEY_UNARY(DeleteSecretKey, v1::DeleteSecretKeyRequest, v1::DeleteSecretKeyResponse)
LATCHKEY_UNARY(GetKey, v1::GetKeyRequest, v1::Key)
LATCHKEY_UNARY(ListKeys, v1::ListKeysRequest, v1::ListKeysResponse)
LATCHKEY_UNARY(ListAuditEvents, v1::ListAuditEventsRequest, v1::ListAuditEventsResponse)
LATCHKEY_UNARY(CreatePrincipal, v1::CreatePrincipalRequest, v1::CreatePrincipalResponse)
LATCHKEY_UNARY(ListPrincipals, v1::ListPrincipalsRequest, v1::ListPrincipalsResponse)
LATCHKEY_UNARY(DeletePrincipal, v1::DeletePrincipalRequest, v1::DeletePrincipalResponse)
LATCHKEY_UNARY(WhoAmI, v1::WhoAmIRequest, v1::Principal)
LATCHKEY_UNARY(FindKey, v1::FindKeyRequest, v1::Key)
LATCHKEY_UNARY(SetLeakPolicy, v1::SetLeakPolicyRequest, v1::Project)
LATCHKEY_UNARY(CreateWebhook, v1::CreateWebhookRequest, v1::CreateWebhookResponse)
LATCHKEY_UNARY(ListWebhooks, v1::ListWebhooksRequest, v1::ListWebhooksResponse)
LATCHKEY_UNARY(DeleteWebhook, v1::DeleteWebhookRequest, v1::DeleteWebhookResponse)
LATCHKEY_UNARY(ListWebhookDeliveries, v1::ListWebhookDeliveriesRequest,
               v1::ListWebhookDeliveriesResponse)
LATCHKEY_UNARY(CreateRoleBinding, v1::CreateRoleBindingRequest, v1::RoleBinding)
LATCHKEY_UNARY(ListRoleBindings, v1::ListRoleBindingsRequest, v1::ListRoleBindingsResponse)
LATCHKEY_UNARY(DeleteRoleBinding, v1::DeleteRoleBindingRequest, v1::DeleteRoleBindingResponse)

#undef LATCHKEY_UNARY

AdminService::Reactor* AdminService::GetPropagation(Ctx* ctx, const v1::GetPropagationRequest* req,
                                                    v1::GetPropagationResponse* resp) {
  Reactor* reactor = ctx->DefaultReactor();
  absl::StatusOr<Caller> caller = AuthenticateCall(*authority_, *ctx);
  absl::Status status = caller.status();
  if (status.ok()) status = AuthorizeAnywhere(*caller, Permission::kRead);
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  // Other replicas' sidecars come from the store (an etcd read).
  store_work_->Post([this, reactor, req, resp] {
    absl::StatusOr<v1::GetPropagationResponse> receipt = Receipt(req->revision());
    if (receipt.ok()) *resp = *std::move(receipt);
    reactor->Finish(ToGrpcStatus(receipt.status()));
  });
  return reactor;
}

AdminService::Reactor* AdminService::TestWebhook(Ctx* ctx, const v1::TestWebhookRequest* req,
                                                 v1::WebhookDelivery* resp) {
  Reactor* reactor = ctx->DefaultReactor();
  absl::StatusOr<Caller> caller = AuthenticateCall(*authority_, *ctx);
  if (!caller.ok() || webhooks_ == nullptr) {
    reactor->Finish(ToGrpcStatus(caller.ok() ? absl::UnavailableError("webhooks are off here")
                                             : caller.status()));
    return reactor;
  }
  // The ping waits for the receiver (at most the delivery timeout), on the
  // deliverer's threads, not the store's.
  webhooks_->TestAsync(*caller, *req, [reactor, resp](absl::StatusOr<v1::WebhookDelivery> sent) {
    if (sent.ok()) *resp = *std::move(sent);
    reactor->Finish(ToGrpcStatus(sent.status()));
  });
  return reactor;
}

absl::StatusOr<v1::GetPropagationResponse> AdminService::Receipt(uint64_t revision) const {
  return propagation_->ReceiptAcrossReplicas(revision, store_->head_revision(), store_->replicas(),
                                             absl::Now());
}

}  // namespace latchkey
