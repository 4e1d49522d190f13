// scripts/run, as a newcomer runs it, with its own data dir and ports.
#include <signal.h>

#include <catch2/catch.hpp>
#include <regex>

#include "tests/testing/cluster.h"

namespace latchkey {
namespace {

TEST_CASE("scripts/run starts an authority and a sidecar, prints ready, and stops on SIGINT") {
  testing::TempDir dir;
  const std::string authority = "127.0.0.1:" + std::to_string(testing::PickFreePort());
  const std::string sidecar = "127.0.0.1:" + std::to_string(testing::PickFreePort());
  const std::vector<std::string> env = {
      "LATCHKEY_DATA_DIR=" + (dir / "data"),  "LATCHKEY_AUTHORITY_LISTEN=" + authority,
      "LATCHKEY_SIDECAR_LISTEN=" + sidecar,   "LATCHKEY_AUTHORITY_METRICS=127.0.0.1:0",
      "LATCHKEY_SIDECAR_METRICS=127.0.0.1:0", "LATCHKEY_BIN_DIR=" + std::string(LATCHKEY_BIN_DIR)};
  for (const std::string& e : env) {  // inherited by the script
    setenv(e.substr(0, e.find('=')).c_str(), e.substr(e.find('=') + 1).c_str(), 1);
  }
  testing::Subprocess run({std::string(LATCHKEY_SOURCE_DIR) + "/scripts/run"}, dir / "run.log");
  INFO(run.Log());
  REQUIRE(run.WaitForLog("\nready\n", std::chrono::seconds(60)));

  // Follow what it printed: the admin token path and latchkeyctl.
  REQUIRE(run.Log().find(dir / "data/admin.token") != std::string::npos);
  testing::CommandResult created =
      testing::RunCommand({testing::Binary("latchkeyctl"), "--authority", authority, "--token-file",
                           dir / "data/admin.token", "project", "create", "demo"});
  REQUIRE(created.exit_code == 0);
  std::smatch key;
  REQUIRE(std::regex_search(created.out, key, std::regex("lkp_[0-9A-Za-z]{38}")));
  REQUIRE(testing::Eventually([&] { return testing::Verdict(sidecar, key.str()) == v1::VALID; }));

  run.Signal(SIGINT);
  REQUIRE(run.Wait() == 0);
  REQUIRE(run.Log().find("stopped (exit 0)") != std::string::npos);
  const std::string authority_log = testing::ReadFile(dir / "data/logs/authority.log");
  const std::string sidecar_log = testing::ReadFile(dir / "data/logs/sidecar.log");
  REQUIRE(authority_log.find("stopped") != std::string::npos);
  REQUIRE(sidecar_log.find("stopped") != std::string::npos);
  for (const std::string& e : env) unsetenv(e.substr(0, e.find('=')).c_str());
}

}  // namespace
}  // namespace latchkey
