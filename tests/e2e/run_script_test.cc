// scripts/run, as a newcomer runs it, with its own data dir and ports.
#include <httplib.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <regex>

#include "tests/testing/cluster.h"

namespace latchkey {
namespace {

TEST_CASE(
    "scripts/run starts an authority, a sidecar and the console, prints ready, and stops on "
    "SIGINT") {
  testing::TempDir dir;
  const std::string authority = "127.0.0.1:" + std::to_string(testing::PickFreePort());
  const std::string sidecar = "127.0.0.1:" + std::to_string(testing::PickFreePort());
  const std::vector<std::string> env = {"LATCHKEY_DATA_DIR=" + (dir / "data"),
                                        "LATCHKEY_AUTHORITY_LISTEN=" + authority,
                                        "LATCHKEY_SIDECAR_LISTEN=" + sidecar,
                                        "LATCHKEY_AUTHORITY_METRICS=127.0.0.1:0",
                                        "LATCHKEY_SIDECAR_METRICS=127.0.0.1:0",
                                        "LATCHKEY_CONSOLE_LISTEN=127.0.0.1:0",
                                        "LATCHKEY_BIN_DIR=" + std::string(LATCHKEY_BIN_DIR)};
  for (const std::string& e : env) {  // inherited by the script
    setenv(e.substr(0, e.find('=')).c_str(), e.substr(e.find('=') + 1).c_str(), 1);
  }
  testing::Subprocess run({std::string(LATCHKEY_SOURCE_DIR) + "/scripts/run"}, dir / "run.log");
  INFO(run.Log());
  REQUIRE(run.WaitForLog("\nready\n", std::chrono::seconds(60)));

  // Follow what it printed: the admin token, its path, latchkeyctl and the console.
  REQUIRE(run.Log().find(dir / "data/admin.token") != std::string::npos);
  const std::string token = testing::ReadFile(dir / "data/admin.token");
  REQUIRE(run.Log().find("admin token " + token.substr(0, token.size() - 1)) != std::string::npos);
  std::smatch url;
  const std::string log = run.Log();
  REQUIRE(std::regex_search(log, url, std::regex("console +http://127\\.0\\.0\\.1:([0-9]+)/")));
  httplib::Client console("127.0.0.1", std::stoi(url[1].str()));
  httplib::Result page = console.Get("/");
  REQUIRE(page);
  REQUIRE(page->status == 200);
  REQUIRE(page->body.find("Sign in to latchkey") != std::string::npos);
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
  const std::string console_log = testing::ReadFile(dir / "data/logs/console.log");
  REQUIRE(authority_log.find("stopped") != std::string::npos);
  REQUIRE(sidecar_log.find("stopped") != std::string::npos);
  REQUIRE(console_log.find("stopped") != std::string::npos);
  for (const std::string& e : env) unsetenv(e.substr(0, e.find('=')).c_str());
}

TEST_CASE(
    "scripts/run --etcd starts etcd, two authorities and a sidecar that keeps up when one "
    "authority is killed") {
  testing::TempDir dir;
  auto port = [] { return "127.0.0.1:" + std::to_string(testing::PickFreePort()); };
  const std::string authority = port(), authority2 = port(), sidecar = port();
  // Ten ports in a row for etcd: clients on BASE..BASE+2, peers on BASE+10..
  const int etcd_base = 20000 + testing::PickFreePort() % 30000;
  const std::vector<std::string> env = {"LATCHKEY_DATA_DIR=" + (dir / "data"),
                                        "LATCHKEY_AUTHORITY_LISTEN=" + authority,
                                        "LATCHKEY_AUTHORITY2_LISTEN=" + authority2,
                                        "LATCHKEY_SIDECAR_LISTEN=" + sidecar,
                                        "LATCHKEY_AUTHORITY_METRICS=127.0.0.1:0",
                                        "LATCHKEY_AUTHORITY2_METRICS=127.0.0.1:0",
                                        "LATCHKEY_SIDECAR_METRICS=127.0.0.1:0",
                                        "LATCHKEY_CONSOLE_LISTEN=127.0.0.1:0",
                                        "LATCHKEY_ETCD_PORT_BASE=" + std::to_string(etcd_base),
                                        "LATCHKEY_BIN_DIR=" + std::string(LATCHKEY_BIN_DIR)};
  for (const std::string& e : env) {
    setenv(e.substr(0, e.find('=')).c_str(), e.substr(e.find('=') + 1).c_str(), 1);
  }
  testing::Subprocess run({std::string(LATCHKEY_SOURCE_DIR) + "/scripts/run", "--etcd"},
                          dir / "run.log");
  INFO(run.Log());
  // Three etcd members, two authorities and a sidecar: on two cores shared
  // with other tests this has taken over a minute (a ceiling, not a figure).
  REQUIRE(run.WaitForLog("\nready\n", std::chrono::seconds(150)));
  const std::string log = run.Log();
  std::smatch pid;
  REQUIRE(std::regex_search(log, pid, std::regex("authorities +[0-9.:]+ \\(pid ([0-9]+)\\)")));

  auto ctl = [&](const std::string& at, std::vector<std::string> args) {
    std::vector<std::string> argv = {testing::Binary("latchkeyctl"), "--authority", at,
                                     "--token-file", dir / "data/admin.token"};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunCommand(argv);
  };
  testing::CommandResult created = ctl(authority2, {"project", "create", "demo"});
  REQUIRE(created.exit_code == 0);
  std::smatch key, key_id;
  REQUIRE(std::regex_search(created.out, key, std::regex("lkp_[0-9A-Za-z]{38}")));
  REQUIRE(std::regex_search(created.out, key_id, std::regex("key_[0-9A-Za-z]{16}")));
  REQUIRE(testing::Eventually([&] { return testing::Verdict(sidecar, key.str()) == v1::VALID; }));

  // The sidecar's authority (the first) goes away; the other carries on.
  REQUIRE(kill(std::stoi(pid[1].str()), SIGKILL) == 0);
  testing::CommandResult rotated = ctl(authority2, {"key", "rotate", key_id.str()});
  INFO(rotated.out << rotated.err);
  REQUIRE(rotated.exit_code == 0);
  REQUIRE(testing::Eventually([&] { return testing::Verdict(sidecar, key.str()) == v1::REVOKED; }));

  run.Signal(SIGINT);
  run.Wait();
  REQUIRE(run.Log().find("stopped (exit") != std::string::npos);
  for (const std::string& e : env) unsetenv(e.substr(0, e.find('=')).c_str());
}

}  // namespace
}  // namespace latchkey
