// 20 cycles of SIGKILL at random moments while 8 clients mutate: nothing
// acknowledged is lost, revisions stay contiguous, ids are never reused, and
// a sidecar that followed all along ends with exactly the authority's set.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "tests/testing/cluster.h"
#include "tests/testing/writers.h"

namespace latchkey {
namespace {

using testing::Acked;
using testing::Admin;
using testing::Subprocess;

TEST_CASE("20 SIGKILL cycles under 8 writers lose no acknowledged mutation") {
  testing::TempDir dir;
  const int port = testing::PickFreePort();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  auto start = [&](int run) {
    auto p = std::make_unique<Subprocess>(
        std::vector<std::string>{testing::Binary("latchkey-authority"), "--listen", address,
                                 "--data-dir", dir / "data", "--metrics-listen", "",
                                 "--progress-interval", "0.1", "--log-level", "warn"},
        dir / ("authority-" + std::to_string(run) + ".log"));
    REQUIRE(
        testing::Eventually([&] { return testing::Health(testing::Channel(address)) == "SERVING"; },
                            std::chrono::seconds(20)));
    return p;
  };
  auto authority = start(0);
  const std::string token = testing::TokenFrom(dir / "data/admin.token");
  Admin setup(address, token);
  SidecarOptions so;
  so.listen.addresses = {"127.0.0.1:0"};
  so.authority = address;
  so.token = setup.CreatePrincipal("loop sidecar", v1::ROLE_SIDECAR);
  so.sidecar_id = "follower";
  std::unique_ptr<SidecarServer> follower = *SidecarServer::Start(so);

  Acked acked;
  std::mt19937 rng(Catch::rngSeed());
  constexpr int kCycles = 20;
  for (int cycle = 1; cycle <= kCycles; ++cycle) {
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < 8; ++c) {
      clients.emplace_back(testing::RunWriter, address, token, cycle * 100 + c, std::ref(acked),
                           std::cref(stop));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 250));
    authority->Signal(SIGKILL);  // mid-write
    REQUIRE(authority->Wait() == 128 + SIGKILL);
    stop = true;
    for (std::thread& t : clients) t.join();
    authority = start(cycle);
  }

  // Every acknowledged mutation is there, as acknowledged.
  Admin admin(address, token);
  REQUIRE(testing::Lost(admin, acked).empty());
  std::lock_guard<std::mutex> lock(acked.mu);
  std::set<std::string> unique(acked.key_ids_in_order.begin(), acked.key_ids_in_order.end());
  REQUIRE(unique.size() == acked.key_ids_in_order.size());

  // Revisions contiguous: every audit record of every project (acknowledged
  // or not) and of the principals, together, are exactly 1..head.
  v1::GetPropagationRequest pr;
  pr.set_revision(1);
  v1::GetPropagationResponse receipt;
  REQUIRE(admin.Call(&v1::KeyAdmin::Stub::GetPropagation, pr, &receipt).ok());
  const std::vector<uint64_t> revisions = testing::AllAuditRevisions(admin);
  REQUIRE(revisions.size() == receipt.head_revision());
  for (size_t i = 0; i < revisions.size(); ++i) REQUIRE(revisions[i] == i + 1);

  // The follower converges to exactly what a fresh sidecar loads.
  so.sidecar_id = "reference";
  std::unique_ptr<SidecarServer> reference = *SidecarServer::Start(so);
  REQUIRE(testing::Eventually(
      [&] {
        return follower->sync_state().applied == receipt.head_revision() &&
               reference->sync_state().applied == receipt.head_revision();
      },
      std::chrono::seconds(30)));
  REQUIRE(follower->keys().Dump() == reference->keys().Dump());
  REQUIRE(follower->sync_state().contract_violations == 0);
  std::printf(
      "crash loop: %d cycles, %llu mutations acknowledged, 0 lost, head %llu, "
      "follower resynced by snapshot %llu times\n",
      kCycles, static_cast<unsigned long long>(acked.count),
      static_cast<unsigned long long>(receipt.head_revision()),
      static_cast<unsigned long long>(follower->sync_state().snapshots - 1));
  authority->Signal(SIGTERM);
  REQUIRE(authority->Wait() == 0);
}

}  // namespace
}  // namespace latchkey
