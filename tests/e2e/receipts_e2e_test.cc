// Revocation receipts across processes, and the logs of the whole run.
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <regex>

#include "tests/testing/cluster.h"

namespace latchkey {
namespace {

using testing::Subprocess;

TEST_CASE("a receipt reports 3 of 3 sidecars, and names one that is stopped") {
  testing::TempDir dir;
  const std::string authority = "127.0.0.1:" + std::to_string(testing::PickFreePort());
  Subprocess auth({testing::Binary("latchkey-authority"), "--listen", authority, "--data-dir",
                   dir / "data", "--metrics-listen", "127.0.0.1:0", "--log-level", "debug"},
                  dir / "authority.log");
  REQUIRE(auth.WaitForLog("serving on", std::chrono::seconds(20)));
  const std::string admin_token = testing::TokenFrom(dir / "data/admin.token");
  testing::Admin admin(authority, admin_token);
  const std::string sidecar_token = admin.CreatePrincipal("pods", v1::ROLE_SIDECAR);
  std::ofstream(dir / "sidecar.token") << sidecar_token << "\n";
  std::vector<std::unique_ptr<Subprocess>> pods;
  for (int i = 0; i < 3; ++i) {
    pods.push_back(std::make_unique<Subprocess>(
        std::vector<std::string>{testing::Binary("latchkey-sidecar"), "--listen",
                                 "127.0.0.1:" + std::to_string(testing::PickFreePort()),
                                 "--authority", authority, "--token-file", dir / "sidecar.token",
                                 "--sidecar-id", "pod-" + std::to_string(i), "--metrics-listen",
                                 "127.0.0.1:0", "--usage-interval", "0.2", "--log-level", "debug"},
        dir / ("pod-" + std::to_string(i) + ".log")));
    REQUIRE(pods.back()->WaitForLog("SERVING", std::chrono::seconds(20)));
  }
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {testing::Binary("latchkeyctl"), "--authority", authority});
    return testing::RunCommand(args, "", {"LATCHKEY_TOKEN=" + admin_token});
  };

  const v1::CreateProjectResponse p = admin.CreateProject("shop");
  std::vector<std::string> secrets = {admin_token, sidecar_token, p.legacy_api_key()};
  const v1::GenerateApiKeyResponse k1 = admin.GenerateApiKey(p.project().project_id());
  const v1::GenerateApiKeyResponse k2 = admin.GenerateApiKey(p.project().project_id());
  secrets.push_back(k1.api_key());
  secrets.push_back(k2.api_key());
  secrets.push_back(admin.GenerateSecretKey(p.project().project_id()).secret_key());

  testing::CommandResult all = ctl({"key", "revoke", k1.key().key_id(), "--wait=5s"});
  INFO(all.out << all.err);
  REQUIRE(all.exit_code == 0);
  std::smatch m;
  REQUIRE(std::regex_search(all.out, m,
                            std::regex(R"(revoked; applied on 3/3 sidecars in ([0-9.]+) ms)")));
  std::printf("receipt: %s", all.out.c_str());

  pods[2]->Signal(SIGSTOP);
  testing::CommandResult partial = ctl({"key", "revoke", k2.key().key_id(), "--wait=1s"});
  INFO(partial.out << partial.err);
  REQUIRE(partial.exit_code == 3);
  REQUIRE(partial.out.find("applied on 2/3 sidecars") != std::string::npos);
  REQUIRE(partial.out.find("missing: pod-2") != std::string::npos);
  std::printf("receipt with pod-2 stopped: %s", partial.out.c_str());
  pods[2]->Signal(SIGCONT);
  // Resumed, it catches up and the receipt completes.
  REQUIRE(testing::Eventually([&] {
    return ctl({"propagation", std::to_string(k2.key().revision())}).exit_code == 0;
  }));

  // pod-1 is killed: it said no goodbye and may be serving somewhere, so it
  // stays in receipts as missing. pod-0 shuts down cleanly and leaves at once.
  pods[1]->Signal(SIGKILL);
  pods[1]->Wait();
  pods[0]->Signal(SIGTERM);
  REQUIRE(pods[0]->Wait() == 0);
  const v1::GenerateApiKeyResponse k3 = admin.GenerateApiKey(p.project().project_id());
  secrets.push_back(k3.api_key());
  REQUIRE(testing::Eventually([&] {  // the authority has seen both streams end
    const v1::GetPropagationResponse r = admin.Receipt(k3.key().revision());
    return r.sidecars_connected() == 1 && r.sidecars_disconnected() == 1;
  }));
  testing::CommandResult killed = ctl({"key", "revoke", k3.key().key_id(), "--wait=1s"});
  INFO(killed.out << killed.err);
  REQUIRE(killed.exit_code == 3);
  REQUIRE(std::regex_search(
      killed.out,
      std::regex(R"(applied on 1/2 sidecars .*; missing: pod-1 \(disconnected [0-9]+ s ago\))")));
  std::printf("receipt with pod-1 killed and pod-0 gone cleanly: %s", killed.out.c_str());

  // Every log line of the run, at debug level: no key value or token.
  pods[2]->Signal(SIGTERM);
  REQUIRE(pods[2]->Wait() == 0);
  // Only the killed pod is left, and it applied nothing: no delay to report.
  const v1::GenerateApiKeyResponse k4 = admin.GenerateApiKey(p.project().project_id());
  secrets.push_back(k4.api_key());
  testing::CommandResult none = ctl({"key", "revoke", k4.key().key_id(), "--wait=500ms"});
  INFO(none.out << none.err);
  REQUIRE(none.exit_code == 3);
  REQUIRE(std::regex_search(
      none.out, std::regex(R"(^revoked; applied on 0/1 sidecars; missing: pod-1 \(disconnected)")));
  auth.Signal(SIGTERM);
  REQUIRE(auth.Wait() == 0);
  std::vector<std::string> logs = {auth.Log()};
  for (auto& pod : pods) logs.push_back(pod->Log());
  size_t lines = 0;
  for (const std::string& log : logs) {
    lines += std::count(log.begin(), log.end(), '\n');
    for (const std::string& secret : secrets) {
      REQUIRE(log.find(secret) == std::string::npos);
      REQUIRE(log.find(secret.substr(4, 32)) == std::string::npos);
    }
  }
  std::printf("scanned %zu log lines for %zu key values and tokens: none found\n", lines,
              secrets.size());
  REQUIRE(lines > 10);
}

}  // namespace
}  // namespace latchkey
