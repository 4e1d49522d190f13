// latchkey-console's HTTP surface: the page, the API route, the headers every
// answer carries, limits, and the listener rules.
#include "console/console_server.h"

#include <httplib.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/testing/certs.h"
#include "tests/testing/cluster.h"

namespace latchkey::console {
namespace {

using nlohmann::json;

struct Console {
  testing::Cluster cluster;
  std::unique_ptr<ConsoleServer> server;
  std::unique_ptr<httplib::Client> http;

  explicit Console(ConsoleOptions options = {}) {
    options.listen = "127.0.0.1:0";
    options.authority = cluster.authority().address();
    absl::StatusOr<std::unique_ptr<ConsoleServer>> started = ConsoleServer::Start(options);
    REQUIRE(started.ok());
    server = *std::move(started);
    http = std::make_unique<httplib::Client>("127.0.0.1", server->port());
  }

  httplib::Result Api(const std::string& method, const std::string& body, const std::string& token,
                      const std::string& type = "application/json") {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return http->Post(("/api/v1/" + method).c_str(), headers, body, type.c_str());
  }
};

void RequireSecurityHeaders(const httplib::Response& res) {
  INFO(res.status);
  REQUIRE(res.get_header_value("Content-Security-Policy") ==
          "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
          "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
  REQUIRE(res.get_header_value("X-Content-Type-Options") == "nosniff");
  REQUIRE(res.get_header_value("Referrer-Policy") == "no-referrer");
  REQUIRE(res.get_header_value("X-Frame-Options") == "DENY");
}

TEST_CASE("the console serves its page from the binary with strict security headers") {
  Console c;
  httplib::Result page = c.http->Get("/");
  REQUIRE(page);
  REQUIRE(page->status == 200);
  REQUIRE(page->get_header_value("Content-Type") == "text/html; charset=utf-8");
  REQUIRE(page->body.find("<script src=\"/console.js\" defer></script>") != std::string::npos);
  RequireSecurityHeaders(*page);
  for (const std::string path : {"/console.js", "/console.css", "/index.html"}) {
    httplib::Result asset = c.http->Get(path.c_str());
    REQUIRE(asset);
    REQUIRE(asset->status == 200);
    RequireSecurityHeaders(*asset);
  }
  httplib::Result missing = c.http->Get("/nope.js");
  REQUIRE(missing->status == 404);
  RequireSecurityHeaders(*missing);
}

TEST_CASE("API answers are JSON, never cached, and carry the same headers") {
  Console c;
  httplib::Result ok = c.Api("WhoAmI", "{}", c.cluster.admin().token);
  REQUIRE(ok);
  REQUIRE(ok->status == 200);
  REQUIRE(json::parse(ok->body)["name"] == "admin");
  REQUIRE(ok->get_header_value("Cache-Control") == "no-store");
  REQUIRE(ok->get_header_value("Content-Type") == "application/json");
  RequireSecurityHeaders(*ok);

  httplib::Result anonymous = c.Api("WhoAmI", "{}", "");
  REQUIRE(anonymous->status == 401);
  REQUIRE(anonymous->get_header_value("Cache-Control") == "no-store");
  REQUIRE(json::parse(anonymous->body)["code"] == "UNAUTHENTICATED");
}

TEST_CASE("the API takes only JSON bodies under the size limit") {
  ConsoleOptions options;
  options.max_body_bytes = 4096;
  Console c(options);
  httplib::Result form =
      c.Api("ListProjects", "a=b", c.cluster.admin().token, "application/x-www-form-urlencoded");
  REQUIRE(form->status == 415);
  REQUIRE(json::parse(form->body)["code"] == "INVALID_ARGUMENT");

  const std::string big = json{{"name", std::string(8192, 'x')}}.dump();
  httplib::Result huge = c.Api("CreateProject", big, c.cluster.admin().token);
  REQUIRE(huge->status == 413);
  REQUIRE(json::parse(huge->body)["code"] == "RESOURCE_EXHAUSTED");
  REQUIRE(huge->get_header_value("Cache-Control") == "no-store");
  // Nothing was created by the refused call.
  httplib::Result projects = c.Api("ListProjects", "{}", c.cluster.admin().token);
  REQUIRE(json::parse(projects->body).value("projects", json::array()).empty());

  httplib::Result get = c.http->Get("/api/v1/ListProjects");
  REQUIRE(get->status == 404);
}

TEST_CASE("plain HTTP beyond loopback is refused unless allowed, and TLS needs a whole pair") {
  ConsoleOptions remote;
  remote.listen = "0.0.0.0:0";
  absl::StatusOr<std::unique_ptr<ConsoleServer>> refused = ConsoleServer::Start(remote);
  REQUIRE(absl::IsInvalidArgument(refused.status()));
  REQUIRE(refused.status().message().find("--tls-cert") != std::string::npos);

  remote.allow_insecure_remote = true;
  REQUIRE(ConsoleServer::Start(remote).ok());

  ConsoleOptions half;
  half.listen = "127.0.0.1:0";
  half.tls_cert = "/some/cert.pem";
  REQUIRE(absl::IsInvalidArgument(ConsoleServer::Start(half).status()));
  ConsoleOptions bad_address;
  bad_address.listen = "no-port";
  REQUIRE(absl::IsInvalidArgument(ConsoleServer::Start(bad_address).status()));
}

TEST_CASE("with --tls-cert and --tls-key the console serves HTTPS, remote included") {
  testing::TempDir dir;
  const testing::Pem ca = testing::SelfSigned("latchkey test CA", true);
  const testing::Pem cert = testing::Issue(ca, "console");
  std::ofstream(dir / "ca.pem") << ca.cert;
  std::ofstream(dir / "console.pem") << cert.cert;
  std::ofstream(dir / "console.key") << cert.key;
  testing::Cluster cluster;
  ConsoleOptions options;
  options.listen = "0.0.0.0:0";  // TLS makes a remote listener acceptable
  options.tls_cert = dir / "console.pem";
  options.tls_key = dir / "console.key";
  options.authority = cluster.authority().address();
  absl::StatusOr<std::unique_ptr<ConsoleServer>> server = ConsoleServer::Start(options);
  REQUIRE(server.ok());
  REQUIRE((*server)->url().rfind("https://", 0) == 0);

  httplib::SSLClient https("127.0.0.1", (*server)->port());
  https.set_ca_cert_path((dir / "ca.pem").c_str());
  https.enable_server_certificate_verification(true);
  httplib::Result page = https.Get("/");
  REQUIRE(page);
  REQUIRE(page->status == 200);
  REQUIRE(page->get_header_value("Strict-Transport-Security").find("max-age=") == 0);
  httplib::Result me =
      https.Post("/api/v1/WhoAmI", {{"Authorization", "Bearer " + cluster.admin().token}}, "{}",
                 "application/json");
  REQUIRE(me);
  REQUIRE(me->status == 200);

  httplib::Client plain("127.0.0.1", (*server)->port());
  httplib::Result refused = plain.Get("/");
  REQUIRE((!refused || refused->status != 200));
}

}  // namespace
}  // namespace latchkey::console
