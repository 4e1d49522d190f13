// latchkey::edge in a process of its own making: following a real authority
// in process, counted in receipts and usage like a sidecar.
#include "latchkey/edge.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "common/key_format.h"
#include "tests/testing/cluster.h"

namespace latchkey {
namespace {

using edge::Verdict;
using testing::Cluster;

std::unique_ptr<edge::Validator> StartEdge(Cluster& c, std::string client_id) {
  edge::Options options;
  options.authority = c.authority().address();
  options.token = c.sidecar_token();
  options.client_id = std::move(client_id);
  options.usage_interval = absl::Milliseconds(100);
  absl::StatusOr<std::unique_ptr<edge::Validator>> v = edge::Validator::Start(options);
  REQUIRE(v.ok());
  REQUIRE((*v)->WaitUntilFresh(absl::Seconds(10)));
  return *std::move(v);
}

bool Becomes(const edge::Validator& v, const std::string& key, Verdict want) {
  for (int i = 0; i < 1000; ++i) {
    if (v.Validate(key).verdict == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

TEST_CASE("an edge validator answers every verdict with the key's ids") {
  Cluster c;
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  const std::string project = p.project().project_id();
  const v1::GenerateApiKeyResponse api = c.admin().GenerateApiKey(project);
  const v1::GenerateSecretKeyResponse secret = c.admin().GenerateSecretKey(project);
  auto v = StartEdge(c, "ingest-1");
  REQUIRE(v->applied_revision() > 0);

  const edge::Result r = v->Validate(api.api_key());
  REQUIRE(r.verdict == Verdict::kValid);
  REQUIRE(r.key_id() == api.key().key_id());
  REQUIRE(r.project_id() == project);
  REQUIRE_FALSE(r.secret_key);
  REQUIRE(v->Validate(secret.secret_key()).secret_key);
  REQUIRE(v->Validate(GenerateKey(v1::API_KEY)).verdict == Verdict::kUnknown);
  REQUIRE(v->Validate(GenerateKey(v1::API_KEY)).key_id().empty());
  REQUIRE(v->Validate("lkp_short").verdict == Verdict::kMalformed);

  REQUIRE(c.admin().Revoke(api.key().key_id()).ok());
  REQUIRE(Becomes(*v, api.api_key(), Verdict::kRevoked));
  v1::SetApiAccessRequest access;
  access.set_project_id(project);
  access.set_enabled(false);
  v1::Project proj;
  REQUIRE(c.admin().Call(&v1::KeyAdmin::Stub::SetApiAccess, access, &proj).ok());
  REQUIRE(Becomes(*v, p.legacy_api_key(), Verdict::kProjectDisabled));
}

TEST_CASE("receipts count an edge validator like a sidecar, and list it missing once gone") {
  Cluster c;
  c.AddSidecar();
  auto v = StartEdge(c, "ingest-1");
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  const v1::GenerateApiKeyResponse api = c.admin().GenerateApiKey(p.project().project_id());
  REQUIRE(Becomes(*v, api.api_key(), Verdict::kValid));
  REQUIRE(c.AllCaughtUp());
  v1::Key revoked;
  REQUIRE(c.admin().Revoke(api.key().key_id(), &revoked).ok());
  REQUIRE(Becomes(*v, api.api_key(), Verdict::kRevoked));
  v1::GetPropagationResponse receipt;
  for (int i = 0; i < 400; ++i) {
    receipt = c.admin().Receipt(revoked.revision());
    if (receipt.sidecars_applied() == 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(receipt.sidecars_connected() == 2);
  REQUIRE(receipt.sidecars_applied() == 2);

  // A process that dies without saying goodbye stays listed as missing.
  v.reset();  // this one says it leaves: it is no longer counted at all
  const v1::GetPropagationResponse after = c.admin().Receipt(revoked.revision());
  CHECK(after.sidecars_connected() == 1);
  CHECK(after.missing_sidecar_ids().empty());
}

TEST_CASE("an edge validator reports the usage it counted to the authority") {
  Cluster c;
  const v1::CreateProjectResponse p = c.admin().CreateProject("shop");
  const v1::GenerateApiKeyResponse api = c.admin().GenerateApiKey(p.project().project_id());
  auto v = StartEdge(c, "ingest-1");
  REQUIRE(Becomes(*v, api.api_key(), Verdict::kValid));
  for (int i = 0; i < 9; ++i) REQUIRE(v->Validate(api.api_key()).verdict == Verdict::kValid);
  v1::GetKeyRequest get;
  get.set_key_id(api.key().key_id());
  v1::Key key;
  for (int i = 0; i < 400; ++i) {
    REQUIRE(c.admin().Call(&v1::KeyAdmin::Stub::GetKey, get, &key).ok());
    if (key.has_last_used_time()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(key.has_last_used_time());
}

TEST_CASE("an edge validator without a token does not start") {
  absl::StatusOr<std::unique_ptr<edge::Validator>> v = edge::Validator::Start({});
  REQUIRE(absl::IsInvalidArgument(v.status()));
}

}  // namespace
}  // namespace latchkey
