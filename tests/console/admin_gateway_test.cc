// The console's JSON API against a real in-process authority: tokens pass
// through untouched, the authority decides, and errors keep one shape.
#include "console/admin_gateway.h"

#include <google/protobuf/descriptor.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/testing/cluster.h"

namespace latchkey::console {
namespace {

using nlohmann::json;

struct Gateway {
  testing::Cluster cluster;
  AdminGateway gateway{testing::Channel(cluster.authority().address())};
  std::string bearer = "Bearer " + cluster.admin().token;
  std::string member = cluster.admin().CreatePrincipal("mo", v1::ROLE_MEMBER);

  json Ok(const std::string& method, const json& request = json::object()) {
    JsonReply reply = gateway.Call(method, bearer, request.dump());
    INFO(reply.body);
    REQUIRE(reply.http_status == 200);
    return json::parse(reply.body);
  }
};

TEST_CASE("the gateway runs KeyAdmin methods with the caller's token and protobuf JSON") {
  Gateway g;
  json me = g.Ok("WhoAmI");
  REQUIRE(me["name"] == "admin");
  REQUIRE(me["role"] == "ROLE_ADMIN");

  json created = g.Ok("CreateProject", {{"name", "Web shop"}});
  const std::string project = created["project"]["projectId"];
  json generated = g.Ok("GenerateApiKey", {{"projectId", project}, {"name", "ios app"}});
  REQUIRE(std::string(generated["apiKey"]).rfind("lkp_", 0) == 0);
  json keys = g.Ok("ListKeys", {{"projectId", project}});
  REQUIRE(keys["keys"].size() == 2);
  REQUIRE(keys["keys"][1]["kind"] == "API_KEY");
  // uint64 revisions travel as strings in protobuf JSON, both ways.
  json receipt = g.Ok("GetPropagation", {{"revision", generated["revision"]}});
  REQUIRE(receipt["revision"] == generated["revision"]);
}

TEST_CASE("the gateway passes each caller's token, so the authority's roles hold") {
  Gateway g;
  const std::string& member = g.member;
  const std::string project = g.Ok("CreateProject", {{"name", "p"}})["project"]["projectId"];
  const std::string legacy = g.Ok("GetProject", {{"projectId", project}})["legacyKeyId"];

  JsonReply listed =
      g.gateway.Call("ListKeys", "Bearer " + member, json{{"projectId", project}}.dump());
  REQUIRE(listed.http_status == 200);
  JsonReply value =
      g.gateway.Call("GetApiKeyValue", "Bearer " + member, json{{"keyId", legacy}}.dump());
  REQUIRE(value.http_status == 403);
  REQUIRE(json::parse(value.body) ==
          json{{"code", "PERMISSION_DENIED"}, {"message", json::parse(value.body)["message"]}});
  REQUIRE(value.body.find("lkp_") == std::string::npos);
}

TEST_CASE("the gateway refuses a call without a well-formed bearer token before the authority") {
  Gateway g;
  const std::string authorization =
      GENERATE(std::string(""), std::string("Bearer "), std::string("Basic YWRtaW46YWRtaW4="),
               std::string("Bearer two words"), std::string("Bearer tok\r\nx-evil: 1"),
               "Bearer " + std::string(17000, 'a'));
  const uint64_t failed_before = g.cluster.authority().authority().failed_authentications();
  JsonReply reply = g.gateway.Call("ListProjects", authorization, "{}");
  REQUIRE(reply.http_status == 401);
  REQUIRE(json::parse(reply.body)["code"] == "UNAUTHENTICATED");
  REQUIRE(g.cluster.authority().authority().failed_authentications() == failed_before);

  JsonReply wrong = g.gateway.Call("ListProjects", "Bearer lk_unknown_token", "{}");
  REQUIRE(wrong.http_status == 401);
}

TEST_CASE("the gateway answers bad requests with one JSON shape and no echo of the body") {
  Gateway g;
  struct Case {
    std::string method, body;
    int http_status;
    std::string code;
  };
  const Case c = GENERATE(
      Case{"NoSuchMethod", "{}", 404, "NOT_FOUND"},
      Case{"ListKeys", "{not json", 400, "INVALID_ARGUMENT"},
      Case{"ListKeys", R"({"projectId": 7})", 400, "INVALID_ARGUMENT"},
      Case{"RevokeApiKey", R"({"keyId": "x", "value": "lkp_leaked"})", 400, "INVALID_ARGUMENT"},
      Case{"RevokeApiKey", R"({"keyId": "key_0000000000000000"})", 404, "NOT_FOUND"},
      Case{"GetApiKeyValue", R"({"keyId": "not-an-id"})", 400, "INVALID_ARGUMENT"});
  INFO(c.method << " " << c.body);
  JsonReply reply = g.gateway.Call(c.method, g.bearer, c.body);
  REQUIRE(reply.http_status == c.http_status);
  json error = json::parse(reply.body);
  REQUIRE(error.size() == 2);
  REQUIRE(error["code"] == c.code);
  REQUIRE(reply.body.find("lkp_leaked") == std::string::npos);
}

TEST_CASE("every KeyAdmin method is reachable through the gateway") {
  Gateway g;
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          v1::KeyAdmin::service_full_name());
  REQUIRE(service != nullptr);
  REQUIRE(service->method_count() >= 19);
  for (int i = 0; i < service->method_count(); ++i) {
    const std::string method = service->method(i)->name();
    INFO(method);
    // A member's call reaches the authority, which answers (often refuses) it:
    // anything but the gateway's own "no such method".
    JsonReply reply = g.gateway.Call(method, "Bearer " + g.member, "{}");
    REQUIRE(json::parse(reply.body).value("message", "").find("has no method") ==
            std::string::npos);
  }
}

TEST_CASE("gRPC codes map to the HTTP statuses a browser and a proxy understand") {
  using C = grpc::StatusCode;
  const std::pair<C, int> c =
      GENERATE(std::pair{C::OK, 200}, std::pair{C::INVALID_ARGUMENT, 400},
               std::pair{C::FAILED_PRECONDITION, 400}, std::pair{C::UNAUTHENTICATED, 401},
               std::pair{C::PERMISSION_DENIED, 403}, std::pair{C::NOT_FOUND, 404},
               std::pair{C::ALREADY_EXISTS, 409}, std::pair{C::RESOURCE_EXHAUSTED, 429},
               std::pair{C::UNAVAILABLE, 503}, std::pair{C::DEADLINE_EXCEEDED, 504},
               std::pair{C::INTERNAL, 500}, std::pair{C::DATA_LOSS, 500});
  REQUIRE(HttpStatusFor(c.first) == c.second);
}

TEST_CASE("an authority that is down is UNAVAILABLE, not a hang") {
  AdminGateway gateway(testing::Channel("127.0.0.1:" + std::to_string(testing::PickFreePort())),
                       absl::Seconds(2));
  JsonReply reply = gateway.Call("ListProjects", "Bearer lk_some_token", "{}");
  REQUIRE((reply.http_status == 503 || reply.http_status == 504));
}

}  // namespace
}  // namespace latchkey::console
