// TLS and mTLS on the authority: only a client certificate signed by the
// configured CA, and still valid, can administer or watch.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "authority/server.h"
#include "latchkey/v1/key_sync.grpc.pb.h"
#include "tests/testing/certs.h"
#include "tests/testing/clients.h"
#include "tests/testing/github_signer.h"

namespace latchkey {
namespace {

using testing::Pem;

void Write(const std::string& path, const std::string& pem) { std::ofstream(path) << pem; }

struct TlsAuthority {
  testing::TempDir dir;
  Pem ca = testing::SelfSigned("latchkey test CA", true);
  std::unique_ptr<AuthorityServer> server;
  std::string token;

  explicit TlsAuthority(bool mtls) {
    const Pem server_cert = testing::Issue(ca, "authority");
    Write(dir / "ca.pem", ca.cert);
    Write(dir / "server.pem", server_cert.cert);
    Write(dir / "server.key", server_cert.key);
    AuthorityOptions options;
    options.listen.addresses = {"127.0.0.1:0"};
    options.data_dir = dir / "data";
    options.tls = {dir / "server.pem", dir / "server.key", mtls ? dir / "ca.pem" : ""};
    absl::StatusOr<std::unique_ptr<AuthorityServer>> started = AuthorityServer::Start(options);
    REQUIRE(started.ok());
    server = *std::move(started);
    token = testing::TokenFrom(server->admin_token_path());
  }

  std::shared_ptr<grpc::Channel> Channel(const Pem* client) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ca.cert;
    if (client != nullptr) {
      o.pem_cert_chain = client->cert;
      o.pem_private_key = client->key;
    }
    return grpc::CreateChannel(server->address(), grpc::SslCredentials(o));
  }
};

grpc::StatusCode ListProjects(const std::shared_ptr<grpc::Channel>& channel,
                              const std::string& token) {
  auto stub = v1::KeyAdmin::NewStub(channel);
  v1::ListProjectsResponse resp;
  return stub->ListProjects(testing::AuthContext(token, std::chrono::seconds(5)).get(), {}, &resp)
      .error_code();
}

bool CanWatch(const std::shared_ptr<grpc::Channel>& channel, const std::string& token) {
  auto stub = v1::KeySync::NewStub(channel);
  auto ctx = testing::AuthContext(token, std::chrono::seconds(5));
  auto reader = stub->Watch(ctx.get(), {});
  v1::WatchResponse msg;
  const bool got = reader->Read(&msg);
  ctx->TryCancel();
  reader->Finish();
  return got;
}

TEST_CASE("mTLS: only a valid client certificate from the CA can administer or watch") {
  TlsAuthority a(/*mtls=*/true);
  const Pem valid = testing::Issue(a.ca, "pod-1");
  const Pem self_signed = testing::SelfSigned("pod-1", false);
  const Pem other_ca = testing::SelfSigned("another CA", true);
  const Pem foreign = testing::Issue(other_ca, "pod-1");
  const Pem expired = testing::Issue(a.ca, "pod-1", -1);

  REQUIRE(ListProjects(a.Channel(&valid), a.token) == grpc::StatusCode::OK);
  REQUIRE(CanWatch(a.Channel(&valid), a.token));
  struct Case {
    const char* what;
    const Pem* cert;
  };
  for (const Case& c : {Case{"no client certificate", nullptr}, Case{"self-signed", &self_signed},
                        Case{"signed by another CA", &foreign}, Case{"expired", &expired}}) {
    INFO(c.what);
    REQUIRE(ListProjects(a.Channel(c.cert), a.token) == grpc::StatusCode::UNAVAILABLE);
    REQUIRE_FALSE(CanWatch(a.Channel(c.cert), a.token));
  }
  // A valid certificate does not replace the token.
  REQUIRE(ListProjects(a.Channel(&valid), "") == grpc::StatusCode::UNAUTHENTICATED);
}

TEST_CASE("TLS without a client CA serves any client that trusts the server") {
  TlsAuthority a(/*mtls=*/false);
  REQUIRE(ListProjects(a.Channel(nullptr), a.token) == grpc::StatusCode::OK);
  // Plaintext clients cannot talk to a TLS listener.
  REQUIRE(ListProjects(testing::Channel(a.server->address()), a.token) ==
          grpc::StatusCode::UNAVAILABLE);
}

TEST_CASE("a TLS listener beyond loopback is allowed without --allow-insecure-remote") {
  testing::TempDir dir;
  const Pem ca = testing::SelfSigned("ca", true);
  const Pem cert = testing::Issue(ca, "authority");
  Write(dir / "c.pem", cert.cert);
  Write(dir / "c.key", cert.key);
  AuthorityOptions options;
  options.listen.addresses = {"0.0.0.0:0"};
  options.data_dir = dir / "data";
  options.tls = {dir / "c.pem", dir / "c.key", ""};
  REQUIRE(AuthorityServer::Start(options).ok());
  options.tls = {dir / "c.pem", "", ""};
  REQUIRE(absl::IsInvalidArgument(AuthorityServer::Start(options).status()));
}

TEST_CASE("GitHub's secret scanning reaches the authority over HTTPS with its certificate") {
  testing::TempDir dir;
  const Pem ca = testing::SelfSigned("ca", true);
  const Pem cert = testing::Issue(ca, "authority");
  Write(dir / "c.pem", cert.cert);
  Write(dir / "c.key", cert.key);
  Write(dir / "ca.pem", ca.cert);
  const testing::GitHubSigner github("github-key-1");
  Write(dir / "github_keys.json", github.KeysDocument());
  AuthorityOptions options;
  options.listen.addresses = {"127.0.0.1:0"};
  options.data_dir = dir / "data";
  options.tls = {dir / "c.pem", dir / "c.key", ""};
  options.leak_report_listen = "127.0.0.1:0";
  options.github_keys_file = dir / "github_keys.json";
  absl::StatusOr<std::unique_ptr<AuthorityServer>> server = AuthorityServer::Start(options);
  REQUIRE(server.ok());
  REQUIRE((*server)->leak_report_port() > 0);

  httplib::SSLClient client("127.0.0.1", (*server)->leak_report_port());
  client.set_ca_cert_path((dir / "ca.pem").c_str());
  client.enable_server_certificate_verification(true);
  const std::string body = R"([{"token":"lkp_x","type":"latchkey_api_key","url":"u"}])";
  httplib::Result res = client.Post("/secret-scanning/github",
                                    {{"Github-Public-Key-Identifier", github.id()},
                                     {"Github-Public-Key-Signature", github.Sign(body)}},
                                    body, "application/json");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  REQUIRE(res->body.find("false_positive") != std::string::npos);
  // Plain HTTP is not served there.
  httplib::Client plain("127.0.0.1", (*server)->leak_report_port());
  REQUIRE_FALSE(plain.Post("/secret-scanning/github", body, "application/json"));
}

}  // namespace
}  // namespace latchkey
