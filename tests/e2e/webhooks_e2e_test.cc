// Webhooks from a real latchkey-authority process to a receiver in this
// one: what an authority killed in the middle of a delivery sends after its
// restart.
#include <signal.h>

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>

#include "tests/testing/clients.h"
#include "tests/testing/testing.h"
#include "tests/testing/webhook_receiver.h"

namespace latchkey {
namespace {

using nlohmann::json;
using testing::Admin;
using testing::Subprocess;

std::unique_ptr<Subprocess> StartAuthority(const testing::TempDir& dir, int port, int run) {
  return testing::StartAuthorityProcess(
      dir, port, run, {"--webhook-retry-min", "50ms", "--webhook-retry-max", "200ms"});
}

TEST_CASE(
    "an authority SIGKILLed mid-delivery sends that event again after its restart, then the "
    "rest, in order") {
  testing::TempDir dir;
  testing::WebhookReceiver receiver;
  const int port = testing::PickFreePort();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  auto authority = StartAuthority(dir, port, 1);
  Admin admin(address, testing::TokenFrom(dir / "data/admin.token"));
  v1::CreateWebhookRequest create;
  create.set_url(receiver.url());
  create.add_events("key.created");
  v1::CreateWebhookResponse hook;
  REQUIRE(admin.Call(&v1::KeyAdmin::Stub::CreateWebhook, create, &hook).ok());
  const std::string project = admin.CreateProject("p").project().project_id();

  receiver.Hold();  // the first delivery reaches the receiver and waits there
  const std::string first = admin.GenerateApiKey(project, "first").key().key_id();
  REQUIRE(testing::Eventually([&] { return receiver.arrived() == 1; }));
  const std::string second = admin.GenerateApiKey(project, "second").key().key_id();
  authority->Signal(SIGKILL);
  REQUIRE(authority->Wait() == 128 + SIGKILL);
  receiver.Release();  // answered, but nobody hears it: the sender is gone

  authority = StartAuthority(dir, port, 2);
  REQUIRE(testing::Eventually([&] { return receiver.delivered().size() >= 3; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // nothing more comes
  const std::vector<json> got = receiver.delivered();
  INFO(authority->Log());
  REQUIRE(got.size() == 3);
  // The event in flight came again, with the same id; then the next one.
  CHECK(got[0]["data"]["key_id"] == first);
  CHECK(got[1]["data"]["key_id"] == first);
  CHECK(got[1]["id"] == got[0]["id"]);
  CHECK(got[2]["data"]["key_id"] == second);
  CHECK(got[2]["id"] != got[0]["id"]);
}

}  // namespace
}  // namespace latchkey
