// GitHub secret scanning's partner endpoint over real HTTP: reports signed
// with a P-256 key made here, as GitHub signs them, checked against a keys
// file in GitHub's published shape.
#include "authority/rpc/secret_scanning.h"

#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "common/crypto.h"
#include "common/files.h"
#include "common/key_format.h"
#include "tests/testing/authority_fixture.h"
#include "tests/testing/github_signer.h"

namespace latchkey {
namespace {

using nlohmann::json;
using testing::AuthorityFixture;
using testing::GitHubSigner;
using testing::PublicPem;

constexpr char kPath[] = "/secret-scanning/github";

// Arrays are built with json::array: `json{x}` of one element is an array
// under GCC and a copy of x under clang.
std::string KeysFile(std::initializer_list<json> keys) {
  return json{{"public_keys", json::array_t(keys)}}.dump(2);
}
json Published(const GitHubSigner& signer, bool current = true) {
  return json::parse(signer.PublishedKey(current));
}

// An authority with the endpoint on a free loopback port.
struct Endpoint {
  explicit Endpoint(SecretScanningOptions options = {}) {
    keys_path = f.dir() / "github_keys.json";
    REQUIRE(WritePrivateFile(keys_path, KeysFile({Published(signer)})).ok());
    options.listen = options.listen.empty() ? "127.0.0.1:0" : options.listen;
    options.github_keys_file = keys_path;
    absl::StatusOr<std::unique_ptr<SecretScanningServer>> started =
        SecretScanningServer::Start(options, &f.authority(), &work, &metrics);
    REQUIRE(started.ok());
    server = *std::move(started);
  }

  httplib::Result Post(const std::string& body, const std::string& key_id,
                       const std::string& signature) {
    httplib::Client client("127.0.0.1", server->port());
    httplib::Headers headers;
    if (!key_id.empty()) headers.emplace("Github-Public-Key-Identifier", key_id);
    if (!signature.empty()) headers.emplace("Github-Public-Key-Signature", signature);
    return client.Post(kPath, headers, body, "application/json");
  }
  httplib::Result Post(const std::string& body) {
    return Post(body, signer.id(), signer.Sign(body));
  }

  AuthorityFixture f;
  GitHubSigner signer{"bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c"};
  std::string keys_path;
  WorkQueue work{4};
  Registry metrics;
  std::unique_ptr<SecretScanningServer> server;
};

json Token(const std::string& token, const std::string& url = "https://github.com/o/r/blob/1/f") {
  return {{"token", token}, {"type", "latchkey_api_key"}, {"url", url}, {"source", "content"}};
}

std::string Hex(const std::string& token) { return HexPrefix(Sha256Bytes(token), 32); }

TEST_CASE("a signed report is answered per token: latchkey's values, current or retired, only") {
  Endpoint e;
  const std::string project = e.f.CreateProject().project().project_id();
  const v1::GenerateApiKeyResponse api = *e.f.GenerateApiKey(project);
  const v1::GenerateSecretKeyResponse secret = *e.f.GenerateSecretKey(project);
  v1::RotateApiKeyRequest rotate;
  rotate.set_key_id(api.key().key_id());
  REQUIRE(e.f.authority().RotateApiKey(e.f.manager(), rotate).ok());
  const std::string stranger = GenerateKey(v1::API_KEY);

  const std::string body = json::array({Token(api.api_key()), Token(secret.secret_key()),
                                        Token(stranger), Token("lkp_nope")})
                               .dump();
  httplib::Result res = e.Post(body);
  REQUIRE(res);
  REQUIRE(res->status == 200);
  REQUIRE(res->get_header_value("Content-Type") == "application/json");
  const json answer = json::parse(res->body);
  REQUIRE(answer.size() == 4);
  REQUIRE(answer[0] == json{{"token_hash", Hex(api.api_key())},
                            {"token_type", "latchkey_api_key"},
                            {"label", "true_positive"}});
  REQUIRE(answer[1]["label"] == "true_positive");
  REQUIRE(answer[2]["token_hash"] == Hex(stranger));
  REQUIRE(answer[2]["label"] == "false_positive");
  REQUIRE(answer[3]["label"] == "false_positive");
  REQUIRE(e.f.GetKey(api.key().key_id()).leak_url() == "https://github.com/o/r/blob/1/f");
  REQUIRE(e.f.GetKey(secret.key().key_id()).has_leaked_time());
  REQUIRE(e.metrics.Render().find("latchkey_leak_report_tokens_total{label=\"true_positive\"} 2") !=
          std::string::npos);
}

TEST_CASE("a report sent again is answered the same and acts once") {
  Endpoint e;
  const std::string project = e.f.CreateProject().project().project_id();
  const v1::GenerateApiKeyResponse api = *e.f.GenerateApiKey(project);
  const std::string body = json::array({Token(api.api_key()), Token(api.api_key())}).dump();
  const std::string signature = e.signer.Sign(body);

  httplib::Result first = e.Post(body, e.signer.id(), signature);
  REQUIRE(first);
  REQUIRE(first->status == 200);
  const uint64_t head = e.f.store().head_revision();
  const size_t audited = e.f.Audit(project).size();
  httplib::Result replay = e.Post(body, e.signer.id(), signature);
  REQUIRE(replay);
  REQUIRE(replay->status == 200);
  REQUIRE(replay->body == first->body);
  REQUIRE(e.f.store().head_revision() == head);
  REQUIRE(e.f.Audit(project).size() == audited);
  REQUIRE(audited >= 1);
  REQUIRE(e.f.Audit(project).back().action() == "key.leaked");
}

TEST_CASE("an unsigned, tampered or foreign-signed report gets 401 and changes nothing") {
  Endpoint e;
  const std::string project = e.f.CreateProject().project().project_id();
  const v1::GenerateApiKeyResponse api = *e.f.GenerateApiKey(project);
  const std::string body = json::array({Token(api.api_key())}).dump();
  const std::string signature = e.signer.Sign(body);
  const uint64_t head = e.f.store().head_revision();
  GitHubSigner impostor(e.signer.id());  // the same id, another key

  std::string tampered = body;
  tampered.replace(tampered.find("github.com"), 10, "github.org");
  for (const auto& [what, sent, key_id, sig] : {
           std::tuple{"no signature", body, e.signer.id(), std::string()},
           std::tuple{"no key id", body, std::string(), signature},
           std::tuple{"an unknown key id", body, std::string("0123abcd"), signature},
           std::tuple{"a tampered body", tampered, e.signer.id(), signature},
           std::tuple{"another key's signature", body, e.signer.id(), impostor.Sign(body)},
           std::tuple{"a signature that is not base64", body, e.signer.id(),
                      std::string("%%%not-base64%%%")},
       }) {
    INFO(what);
    httplib::Result res = e.Post(sent, key_id, sig);
    REQUIRE(res);
    REQUIRE(res->status == 401);
  }
  REQUIRE(e.f.store().head_revision() == head);
  REQUIRE_FALSE(e.f.GetKey(api.key().key_id()).has_leaked_time());
}

TEST_CASE("a signed report that is not well formed gets 400, and one too large 413") {
  SecretScanningOptions options;
  options.max_body_bytes = 64 * 1024;
  Endpoint e(options);
  const std::string project = e.f.CreateProject().project().project_id();
  const v1::GenerateApiKeyResponse api = *e.f.GenerateApiKey(project);
  const uint64_t head = e.f.store().head_revision();

  json control = Token(api.api_key());
  control["url"] = "https://github.com/a\nInjected: header";
  for (const std::string& body :
       {std::string("not json"), json::object({{"token", api.api_key()}}).dump(),
        json::array({42}).dump(), json::array({json::object({{"type", "x"}})}).dump(),
        json::array({json::object({{"token", 7}})}).dump(),
        // a good token first: nothing of a bad report is acted on
        json::array({Token(api.api_key()), json::object({{"token", api.api_key()}, {"url", 1}})})
            .dump(),
        json::array({control}).dump(), json::array({Token(std::string(2000, 'a'))}).dump()}) {
    INFO(body.substr(0, 80));
    httplib::Result res = e.Post(body);
    REQUIRE(res);
    REQUIRE(res->status == 400);
  }
  json many = json::array();
  while (many.dump().size() < 70 * 1024) many.push_back(Token(GenerateKey(v1::API_KEY)));
  httplib::Result res = e.Post(many.dump());
  REQUIRE(res);
  REQUIRE(res->status == 413);
  REQUIRE(e.f.store().head_revision() == head);
}

TEST_CASE(
    "GitHub's keys are read again when the file changes, and a broken file keeps the old ones") {
  Endpoint e;
  const std::string project = e.f.CreateProject().project().project_id();
  const v1::GenerateApiKeyResponse api = *e.f.GenerateApiKey(project);
  GitHubSigner next("next-key");
  const std::string body = json::array({Token(api.api_key())}).dump();
  REQUIRE(e.Post(body, next.id(), next.Sign(body))->status == 401);

  // GitHub rotates: the new key is published beside the old one.
  REQUIRE(
      WritePrivateFile(e.keys_path, KeysFile({Published(e.signer, false), Published(next)})).ok());
  REQUIRE(e.Post(body, next.id(), next.Sign(body))->status == 200);
  REQUIRE(e.Post(body)->status == 200);

  REQUIRE(WritePrivateFile(e.keys_path, "{\"public_keys\": \"oops\"").ok());
  REQUIRE(e.Post(body, next.id(), next.Sign(body))->status == 200);
  // The old key is withdrawn.
  REQUIRE(WritePrivateFile(e.keys_path, KeysFile({Published(next)})).ok());
  REQUIRE(e.Post(body)->status == 401);
}

TEST_CASE("the endpoint refuses to start without keys, or in plain HTTP beyond loopback") {
  AuthorityFixture f;
  WorkQueue work(1);
  Registry metrics;
  SecretScanningOptions options;
  options.listen = "127.0.0.1:0";
  REQUIRE(absl::IsInvalidArgument(
      SecretScanningServer::Start(options, &f.authority(), &work, &metrics).status()));
  options.github_keys_file = f.dir() / "missing.json";
  REQUIRE(absl::IsInvalidArgument(
      SecretScanningServer::Start(options, &f.authority(), &work, &metrics).status()));
  const std::string keys = f.dir() / "keys.json";
  REQUIRE(WritePrivateFile(keys, KeysFile({})).ok());
  options.github_keys_file = keys;
  REQUIRE(absl::IsInvalidArgument(
      SecretScanningServer::Start(options, &f.authority(), &work, &metrics).status()));
  // Only ECDSA P-256 keys are GitHub's kind.
  for (EVP_PKEY* other : {EVP_RSA_gen(2048), EVP_EC_gen("P-384")}) {
    REQUIRE(other != nullptr);
    const std::string pem = PublicPem(other);
    EVP_PKEY_free(other);
    REQUIRE(WritePrivateFile(keys, KeysFile({{{"key_identifier", "other"}, {"key", pem}}})).ok());
    absl::Status refused =
        SecretScanningServer::Start(options, &f.authority(), &work, &metrics).status();
    REQUIRE(absl::IsInvalidArgument(refused));
    REQUIRE(refused.message().find("P-256") != std::string_view::npos);
  }

  GitHubSigner signer("k");
  REQUIRE(WritePrivateFile(keys, KeysFile({Published(signer)})).ok());
  options.listen = "0.0.0.0:0";
  absl::Status beyond =
      SecretScanningServer::Start(options, &f.authority(), &work, &metrics).status();
  REQUIRE(absl::IsInvalidArgument(beyond));
  REQUIRE(beyond.message().find("--tls-cert") != std::string_view::npos);
}

TEST_CASE("ParseReport takes GitHub's fields and nothing malformed") {
  absl::StatusOr<std::vector<ReportedToken>> parsed = ParseReport(
      R"([{"token":"lkp_x","type":"t","url":"https://u","source":"commit","extra":1},{"token":"b"}])");
  REQUIRE(parsed.ok());
  REQUIRE(parsed->size() == 2);
  REQUIRE((*parsed)[0].token == "lkp_x");
  REQUIRE((*parsed)[0].type == "t");
  REQUIRE((*parsed)[0].url == "https://u");
  REQUIRE((*parsed)[0].source == "commit");
  REQUIRE((*parsed)[1].url.empty());
  REQUIRE(ParseReport("[]")->empty());
  REQUIRE(absl::IsInvalidArgument(ParseReport("{}").status()));
  REQUIRE(absl::IsInvalidArgument(ParseReport(R"([{"token":null}])").status()));
  REQUIRE(absl::IsInvalidArgument(ParseReport(R"([{"token":"a\u0000b"}])").status()));
  REQUIRE(absl::IsInvalidArgument(ParseReport("[1,").status()));
}

}  // namespace
}  // namespace latchkey
