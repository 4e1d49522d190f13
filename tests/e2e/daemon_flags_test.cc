// The daemons' flags take the forms people type: durations with units, and an
// empty --metrics-listen to turn metrics off.
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/testing/clients.h"
#include "tests/testing/cluster.h"

namespace latchkey {
namespace {

TEST_CASE("the daemons take durations with units and an empty --metrics-listen") {
  testing::TempDir dir;
  const std::string authority = "127.0.0.1:" + std::to_string(testing::PickFreePort());
  testing::Subprocess server(
      {testing::Binary("latchkey-authority"), "--listen", authority, "--data-dir", dir / "data",
       "--progress-interval=250ms", "--metrics-listen="},
      dir / "authority.log");
  INFO(server.Log());
  REQUIRE(server.WaitForLog("serving on", std::chrono::seconds(20)));
  testing::Admin admin(authority, testing::TokenFrom(dir / "data/admin.token"));
  std::ofstream(dir / "sidecar.token") << admin.CreatePrincipal("pods", v1::ROLE_SIDECAR);

  const std::string sidecar = "127.0.0.1:" + std::to_string(testing::PickFreePort());
  testing::Subprocess pod({testing::Binary("latchkey-sidecar"), "--listen", sidecar, "--authority",
                           authority, "--token-file", dir / "sidecar.token",
                           "--metrics-listen=", "--usage-interval=100ms", "--max-staleness=30s"},
                          dir / "sidecar.log");
  INFO(pod.Log());
  REQUIRE(pod.WaitForLog("SERVING", std::chrono::seconds(20)));

  // --usage-interval=100ms took effect: a use reaches the authority at once.
  const v1::CreateProjectResponse project = admin.CreateProject("p");
  REQUIRE(testing::Eventually(
      [&] { return testing::Verdict(sidecar, project.legacy_api_key()) == v1::VALID; }));
  REQUIRE(testing::Eventually(
      [&] {
        v1::GetKeyRequest req;
        req.set_key_id(project.legacy_key().key_id());
        v1::Key key;
        return admin.Call(&v1::KeyAdmin::Stub::GetKey, req, &key).ok() && key.use_count() == 1;
      },
      std::chrono::seconds(3)));

  for (const std::string bad : {"--usage-interval=1parsec", "--max-staleness=0s"}) {
    testing::CommandResult refused = testing::RunCommand(
        {testing::Binary("latchkey-sidecar"), "--token-file", dir / "sidecar.token", bad});
    REQUIRE(refused.exit_code != 0);
    REQUIRE(refused.err.find(bad.substr(0, bad.find('='))) != std::string::npos);
  }
  pod.Signal(SIGTERM);
  REQUIRE(pod.Wait() == 0);
  server.Signal(SIGTERM);
  REQUIRE(server.Wait() == 0);
}

}  // namespace
}  // namespace latchkey
