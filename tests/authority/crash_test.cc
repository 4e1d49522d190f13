// Durability across SIGKILL: every acknowledged mutation survives, and
// revisions stay contiguous. Runs the real latchkey-authority binary.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <set>
#include <thread>

#include "tests/testing/clients.h"

namespace latchkey {
namespace {

using testing::Admin;
using testing::Subprocess;

using testing::StartAuthorityProcess;

TEST_CASE("acknowledged mutations survive SIGKILL and revisions stay contiguous") {
  testing::TempDir dir;
  const int port = testing::PickFreePort();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  auto authority = StartAuthorityProcess(dir, port, 1);
  const std::string token = testing::TokenFrom(dir / "data/admin.token");

  std::mutex mu;
  std::map<std::string, uint64_t> acked;  // project id -> revision
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      Admin admin(address, token);
      for (int i = 0; !stop; ++i) {
        v1::CreateProjectRequest req;
        req.set_name("c" + std::to_string(t) + "-" + std::to_string(i));
        v1::CreateProjectResponse resp;
        if (!admin.Call(&v1::KeyAdmin::Stub::CreateProject, req, &resp).ok()) return;
        std::lock_guard<std::mutex> lock(mu);
        acked[resp.project().project_id()] = resp.revision();
      }
    });
  }
  REQUIRE(testing::Eventually([&] {
    std::lock_guard<std::mutex> lock(mu);
    return acked.size() >= 40;
  }));
  authority->Signal(SIGKILL);  // mid-stream: clients are still writing
  REQUIRE(authority->Wait() == 128 + SIGKILL);
  stop = true;
  for (std::thread& c : clients) c.join();

  authority = StartAuthorityProcess(dir, port, 2);
  Admin admin(address, token);
  for (const auto& [project_id, revision] : acked) {
    v1::GetProjectRequest req;
    req.set_project_id(project_id);
    v1::Project p;
    INFO(project_id << " acknowledged at revision " << revision);
    REQUIRE(admin.Call(&v1::KeyAdmin::Stub::GetProject, req, &p).ok());
    REQUIRE(p.revision() == revision);
  }
  const std::vector<uint64_t> revs = testing::AllAuditRevisions(admin);
  for (size_t i = 0; i < revs.size(); ++i) REQUIRE(revs[i] == i + 1);
  // Writing continues from the next revision.
  const v1::CreateProjectResponse next = admin.CreateProject("after restart");
  REQUIRE(next.revision() == revs.size() + 1);
  std::printf("crash test: %zu mutations acknowledged before SIGKILL, 0 lost, head %zu\n",
              acked.size(), revs.size());
  authority->Signal(SIGTERM);
  REQUIRE(authority->Wait() == 0);
}

}  // namespace
}  // namespace latchkey
