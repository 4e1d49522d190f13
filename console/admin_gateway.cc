#include "console/admin_gateway.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/bearer.h"
#include "common/status.h"

namespace latchkey::console {
namespace {

std::string ErrorJson(grpc::StatusCode code, const std::string& message) {
  google::protobuf::Struct error;  // built as a message so the text is escaped
  (*error.mutable_fields())["code"].set_string_value(StatusCodeName(code));
  (*error.mutable_fields())["message"].set_string_value(message);
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(error, &json).ok()) json = "{}";
  return json;
}

}  // namespace

int HttpStatusFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::CANCELLED:
      return 499;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

template <typename Req, typename Resp>
void AdminGateway::Add(std::string name,
                       grpc::Status (v1::KeyAdmin::Stub::*method)(grpc::ClientContext*, const Req&,
                                                                  Resp*)) {
  methods_[std::move(name)] = [this, method](grpc::ClientContext* ctx, std::string_view in,
                                             std::string* out) {
    Req req;
    google::protobuf::util::JsonParseOptions parse;
    parse.ignore_unknown_fields = false;
    if (!google::protobuf::util::JsonStringToMessage(
             in.empty() ? "{}" : google::protobuf::StringPiece(in.data(), in.size()), &req, parse)
             .ok()) {
      // The parser's own words may quote the body, which can hold a key value.
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the request body is not a JSON " + Req::descriptor()->full_name());
    }
    Resp resp;
    grpc::Status status = (stub_.get()->*method)(ctx, req, &resp);
    if (!status.ok()) return status;
    if (!google::protobuf::util::MessageToJsonString(resp, out).ok()) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "cannot print the response as JSON");
    }
    return status;
  };
}

AdminGateway::AdminGateway(std::shared_ptr<grpc::Channel> channel, absl::Duration deadline)
    : stub_(v1::KeyAdmin::NewStub(std::move(channel))), deadline_(deadline) {
  using S = v1::KeyAdmin::Stub;
  Add("CreateProject", &S::CreateProject);
  Add("GetProject", &S::GetProject);
  Add("ListProjects", &S::ListProjects);
  Add("SetApiAccess", &S::SetApiAccess);
  Add("SetLeakPolicy", &S::SetLeakPolicy);
  Add("GenerateApiKey", &S::GenerateApiKey);
  Add("GetApiKeyValue", &S::GetApiKeyValue);
  Add("RevokeApiKey", &S::RevokeApiKey);
  Add("RotateApiKey", &S::RotateApiKey);
  Add("GenerateSecretKey", &S::GenerateSecretKey);
  Add("DeleteSecretKey", &S::DeleteSecretKey);
  Add("GetKey", &S::GetKey);
  Add("ListKeys", &S::ListKeys);
  Add("ListAuditEvents", &S::ListAuditEvents);
  Add("CreatePrincipal", &S::CreatePrincipal);
  Add("ListPrincipals", &S::ListPrincipals);
  Add("DeletePrincipal", &S::DeletePrincipal);
  Add("GetPropagation", &S::GetPropagation);
  Add("WhoAmI", &S::WhoAmI);
  Add("FindKey", &S::FindKey);
  Add("CreateWebhook", &S::CreateWebhook);
  Add("ListWebhooks", &S::ListWebhooks);
  Add("DeleteWebhook", &S::DeleteWebhook);
  Add("ListWebhookDeliveries", &S::ListWebhookDeliveries);
  Add("TestWebhook", &S::TestWebhook);
  Add("CreateRoleBinding", &S::CreateRoleBinding);
  Add("ListRoleBindings", &S::ListRoleBindings);
  Add("DeleteRoleBinding", &S::DeleteRoleBinding);
}

JsonReply AdminGateway::Call(std::string_view method, std::string_view authorization,
                             std::string_view body) const {
  auto it = methods_.find(absl::string_view(method.data(), method.size()));
  if (it == methods_.end()) {
    return {404, ErrorJson(grpc::StatusCode::NOT_FOUND,
                           absl::StrCat("KeyAdmin has no method ",
                                        absl::string_view(method.data(), method.size())))};
  }
  if (!BearerToken(authorization)) {
    return {401, ErrorJson(grpc::StatusCode::UNAUTHENTICATED,
                           "sign in: send \"Authorization: Bearer <principal token>\"")};
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(deadline_));
  ctx.AddMetadata("authorization", std::string(authorization));
  JsonReply reply;
  grpc::Status status = it->second(&ctx, body, &reply.body);
  if (!status.ok()) {
    return {HttpStatusFor(status.error_code()),
            ErrorJson(status.error_code(), status.error_message())};
  }
  return reply;
}

}  // namespace latchkey::console
