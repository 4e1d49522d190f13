// The real binaries: one authority, three sidecars, each its own process.
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/testing/cluster.h"

namespace latchkey {
namespace {

using testing::Subprocess;
using testing::Verdict;

struct Processes {
  testing::TempDir dir;
  int authority_port = testing::PickFreePort();
  std::string authority_address = "127.0.0.1:" + std::to_string(authority_port);
  std::unique_ptr<Subprocess> authority;
  std::vector<std::unique_ptr<Subprocess>> sidecars;
  std::vector<std::string> sidecar_addresses;
  int authority_runs = 0;

  void StartAuthority() {
    authority = std::make_unique<Subprocess>(
        std::vector<std::string>{testing::Binary("latchkey-authority"), "--listen",
                                 authority_address, "--data-dir", dir / "data",
                                 "--progress-interval", "0.1", "--metrics-listen", "127.0.0.1:0"},
        dir / ("authority-" + std::to_string(++authority_runs) + ".log"));
    REQUIRE(authority->WaitForLog("serving on", std::chrono::seconds(20)));
  }

  void StartSidecar(const std::string& token_file) {
    const int i = static_cast<int>(sidecars.size());
    const std::string address = "127.0.0.1:" + std::to_string(testing::PickFreePort());
    sidecars.push_back(std::make_unique<Subprocess>(
        std::vector<std::string>{testing::Binary("latchkey-sidecar"), "--listen", address,
                                 "--authority", authority_address, "--token-file", token_file,
                                 "--sidecar-id", "pod-" + std::to_string(i), "--metrics-listen",
                                 "127.0.0.1:0"},
        dir / ("sidecar-" + std::to_string(i) + ".log")));
    sidecar_addresses.push_back(address);
    REQUIRE(sidecars.back()->WaitForLog("SERVING", std::chrono::seconds(20)));
  }
};

TEST_CASE("a revocation reaches three sidecar processes, which survive the authority's SIGKILL") {
  Processes p;
  p.StartAuthority();
  testing::Admin admin(p.authority_address, testing::TokenFrom(p.dir / "data/admin.token"));
  const std::string token = admin.CreatePrincipal("pods", v1::ROLE_SIDECAR);
  std::ofstream(p.dir / "sidecar.token") << token << "\n";
  for (int i = 0; i < 3; ++i) p.StartSidecar(p.dir / "sidecar.token");

  const v1::CreateProjectResponse project = admin.CreateProject("shop");
  const v1::GenerateApiKeyResponse key = admin.GenerateApiKey(project.project().project_id());
  for (const std::string& a : p.sidecar_addresses) {
    REQUIRE(testing::Eventually([&] { return Verdict(a, key.api_key()) == v1::VALID; }));
  }

  REQUIRE(admin.Revoke(key.key().key_id()).ok());
  const auto revoked_at = std::chrono::steady_clock::now();
  for (size_t i = 0; i < p.sidecar_addresses.size(); ++i) {
    REQUIRE(testing::Eventually(
        [&] { return Verdict(p.sidecar_addresses[i], key.api_key()) == v1::REVOKED; }));
    const auto delay =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - revoked_at);
    std::printf("revocation visible on pod-%zu %.2f ms after RevokeApiKey returned\n", i,
                delay.count());
  }

  // The authority dies; the sidecars answer from memory.
  p.authority->Signal(SIGKILL);
  p.authority->Wait();
  for (const std::string& a : p.sidecar_addresses) {
    REQUIRE(Verdict(a, key.api_key()) == v1::REVOKED);
    REQUIRE(Verdict(a, project.legacy_api_key()) == v1::VALID);
  }

  // It comes back; the sidecars resume from their revision and see new work.
  p.StartAuthority();
  testing::Admin again(p.authority_address, testing::TokenFrom(p.dir / "data/admin.token"));
  const v1::GenerateApiKeyResponse later = again.GenerateApiKey(project.project().project_id());
  for (size_t i = 0; i < p.sidecar_addresses.size(); ++i) {
    REQUIRE(testing::Eventually(
        [&] { return Verdict(p.sidecar_addresses[i], later.api_key()) == v1::VALID; }));
    const std::string log = p.sidecars[i]->Log();
    size_t snapshots = 0;
    for (size_t at = log.find("loaded snapshot"); at != std::string::npos;
         at = log.find("loaded snapshot", at + 1)) {
      ++snapshots;
    }
    INFO(log);
    REQUIRE(snapshots == 1);  // resumed by replay, no second snapshot
  }

  for (auto& s : p.sidecars) s->Signal(SIGTERM);
  for (auto& s : p.sidecars) REQUIRE(s->Wait() == 0);
  p.authority->Signal(SIGTERM);
  REQUIRE(p.authority->Wait() == 0);
}

}  // namespace
}  // namespace latchkey
