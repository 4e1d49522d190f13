#include "bench/leak_report_bench.h"

#include <httplib.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "authority/server.h"
#include "bench/support.h"
#include "common/key_format.h"
#include "common/net.h"
#include "common/strings.h"
#include "tests/testing/github_signer.h"

namespace latchkey::bench {
namespace {

const Caller kAdmin{"", "bench", v1::ROLE_ADMIN};
const Caller kReporter{"", "github-secret-scanning", v1::ROLE_UNSPECIFIED};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "leak-report: %s\n", what.c_str());
  std::exit(1);
}

std::string Report(const std::vector<std::string>& tokens, const std::string& url) {
  nlohmann::json body = nlohmann::json::array();
  for (const std::string& t : tokens) {
    body.push_back(
        {{"token", t}, {"type", "latchkey_api_key"}, {"url", url}, {"source", "content"}});
  }
  return body.dump();
}

// Posts a signed report; returns the milliseconds until the answer and
// checks that it labels `expected_true` tokens true_positive.
double Post(httplib::Client& client, const testing::GitHubSigner& github, const std::string& body,
            size_t expected_true) {
  const Clock::time_point start = Clock::now();
  httplib::Result res = client.Post("/secret-scanning/github",
                                    {{"Github-Public-Key-Identifier", github.id()},
                                     {"Github-Public-Key-Signature", github.Sign(body)}},
                                    body, "application/json");
  const double ms = Ms(Clock::now() - start);
  if (!res || res->status != 200) Die("report not answered 200");
  size_t labelled = 0;
  for (const nlohmann::json& a : nlohmann::json::parse(res->body)) {
    labelled += a["label"] == "true_positive" ? 1 : 0;
  }
  if (labelled != expected_true) Die(StrCat(labelled, " true positives, not ", expected_true));
  return ms;
}

}  // namespace

int LeakReport(int tokens, int rounds, const std::string& etcd_endpoints) {
  const testing::GitHubSigner github("bench-key");
  const std::string dir = TempDataDir("leak-report");
  const std::string keys_file = dir + ".github_keys.json";
  std::ofstream(keys_file) << github.KeysDocument();
  AuthorityOptions o;
  o.listen.addresses = {"127.0.0.1:0"};
  o.data_dir = dir;
  o.max_active_keys = 100000;
  o.leak_report_listen = "127.0.0.1:0";
  o.github_keys_file = keys_file;
  if (!etcd_endpoints.empty()) {
    const Shared shared = MakeShared();
    o.store = "etcd";
    o.etcd.endpoints = *ParseEndpoints(etcd_endpoints);
    o.etcd.prefix = "/bench-" + RandomBase62(12) + "/";
    o.master_key_file = shared.master_key_file;
    o.bootstrap_token_file = shared.token_file;
  }
  absl::StatusOr<std::unique_ptr<AuthorityServer>> server = AuthorityServer::Start(o);
  if (!server.ok()) Die(server.status().ToString());
  KeyAuthority& core = (*server)->authority();

  v1::CreateProjectRequest create;
  create.set_name("leaks");
  absl::StatusOr<v1::CreateProjectResponse> project = core.CreateProject(kAdmin, create);
  if (!project.ok()) Die(project.status().ToString());
  // Reported keys, and a second set for the one-at-a-time baseline, so that
  // both handle first findings of their keys.
  std::vector<std::string> reported, baseline, strangers;
  for (int i = 0; i < 2 * tokens; ++i) {
    v1::GenerateApiKeyRequest req;
    req.set_project_id(project->project().project_id());
    req.set_name("bench");
    absl::StatusOr<v1::GenerateApiKeyResponse> key = core.GenerateApiKey(kAdmin, req);
    if (!key.ok()) Die(key.status().ToString());
    (i % 2 == 0 ? reported : baseline).push_back(key->api_key());
    if (i % 2 == 0) strangers.push_back(GenerateKey(v1::API_KEY));
  }

  httplib::Client client("127.0.0.1", (*server)->leak_report_port());
  client.set_read_timeout(120, 0);
  const char* store = etcd_endpoints.empty() ? "embedded" : "etcd";
  for (int round = 0; round < rounds; ++round) {
    const std::string url = StrCat("https://github.com/bench/repo/blob/", round, "/app.js");
    const std::string body = Report(reported, url);
    const double new_ms = Post(client, github, body, reported.size());
    const double again_ms = Post(client, github, body, reported.size());
    const double unknown_ms = Post(client, github, Report(strangers, url), 0);
    // The baseline: the same work, one finding after another.
    const Clock::time_point start = Clock::now();
    for (const std::string& value : baseline) {
      absl::StatusOr<bool> issued = core.ReportLeak(kReporter, {value, url, "content"});
      if (!issued.ok() || !*issued) Die("baseline report failed");
    }
    const double sequential_ms = Ms(Clock::now() - start);
    std::printf(
        "{\"bench\":\"leak_report\",\"store\":\"%s\",\"tokens\":%d,\"new_ms\":%.1f,"
        "\"sequential_ms\":%.1f,\"again_ms\":%.1f,\"unknown_ms\":%.1f}\n",
        store, tokens, new_ms, sequential_ms, again_ms, unknown_ms);
    std::fflush(stdout);
  }
  (*server)->Shutdown();
  return 0;
}

}  // namespace latchkey::bench
