// latchkeyctl as a user runs it: a real process against real servers.
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "absl/time/clock.h"
#include "common/key_format.h"
#include "tests/testing/cluster.h"
#include "tests/testing/webhook_receiver.h"

namespace latchkey {
namespace {

using nlohmann::json;
using testing::CommandResult;

struct Ctl {
  testing::Cluster& cluster;
  std::string token_file;

  CommandResult operator()(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {testing::Binary("latchkeyctl"), "--authority",
                               cluster.authority().address(), "--token-file", token_file});
    return testing::RunCommand(args, input);
  }
  json Json(std::vector<std::string> args) {
    args.insert(args.begin(), {"-o", "json"});
    CommandResult r = (*this)(args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
  }
};

TEST_CASE("latchkeyctl runs the seed's tasks with tables and JSON") {
  testing::Cluster cluster;
  SidecarServer& sidecar = cluster.AddSidecar();
  Ctl ctl{cluster, cluster.authority().admin_token_path()};

  // Create a project: the table output names it and shows its legacy key.
  CommandResult created = ctl({"project", "create", "Web shop"});
  REQUIRE(created.exit_code == 0);
  std::smatch m;
  REQUIRE(std::regex_search(created.out, m, std::regex("prj_[0-9A-Za-z]{12}")));
  const std::string project = m.str();
  REQUIRE(std::regex_search(created.out, m, std::regex("lkp_[0-9A-Za-z]{38}")));
  REQUIRE(ParseKey(m.str()) == v1::API_KEY);

  // Generate keys (JSON), then list them as a table and as JSON.
  json api = ctl.Json({"key", "generate", project, "--name", "ios app"});
  const std::string api_key = api["apiKey"], api_id = api["key"]["keyId"];
  json secret =
      ctl.Json({"secret", "generate", project, "--name", "exports", "--expires-in", "30d"});
  const std::string secret_id = secret["key"]["keyId"];
  CommandResult table = ctl({"key", "list", project});
  REQUIRE(table.exit_code == 0);
  REQUIRE(table.out.find("ios app") != std::string::npos);
  REQUIRE(table.out.find("CREATED BY") != std::string::npos);
  REQUIRE(table.out.find(api_key) == std::string::npos);  // lists never show values
  json listed = ctl.Json({"key", "list", project});
  REQUIRE(listed["keys"].size() == 3);

  // Copy the value again, validate through the sidecar, revoke, validate again.
  REQUIRE(ctl({"key", "value", api_id}).out == api_key + "\n");
  REQUIRE(cluster.AllCaughtUp());
  CommandResult valid = ctl({"validate", api_key, "--sidecar", sidecar.address()});
  REQUIRE(valid.exit_code == 0);
  REQUIRE(valid.out.rfind("VALID", 0) == 0);
  CommandResult revoked = ctl({"key", "revoke", api_id, "--wait=5s"});
  INFO(revoked.err);
  REQUIRE(revoked.exit_code == 0);
  REQUIRE(std::regex_search(revoked.out, std::regex("revoked; applied on 1/1 sidecars in")));
  CommandResult now = ctl({"validate", api_key, "--sidecar", sidecar.address()});
  REQUIRE(now.exit_code == 4);
  REQUIRE(now.out.rfind("REVOKED", 0) == 0);
  REQUIRE(ctl.Json({"key", "get", api_id})["state"] == "KEY_STATE_REVOKED");

  // Rotate the legacy key with a grace period.
  const std::string legacy_id = ctl.Json({"project", "get", project})["legacyKeyId"];
  json rotated = ctl.Json({"key", "rotate", legacy_id, "--grace", "1h"});
  REQUIRE(rotated["key"]["keyId"] == legacy_id);
  REQUIRE(rotated.contains("previousValidUntil"));

  // Deleting a secret key needs DELETE: refused without a terminal or with
  // the wrong word, accepted with it.
  CommandResult no_tty = ctl({"secret", "delete", secret_id});
  REQUIRE(no_tty.exit_code == 2);
  REQUIRE(no_tty.err.find("--confirm DELETE") != std::string::npos);
  CommandResult wrong = ctl({"secret", "delete", secret_id, "--confirm", "delete"});
  REQUIRE(wrong.exit_code == 1);
  REQUIRE(wrong.err.find("INVALID_ARGUMENT") != std::string::npos);
  REQUIRE(ctl.Json({"key", "list", project})["keys"].size() == 3);
  REQUIRE(ctl({"secret", "delete", secret_id, "--confirm", "DELETE"}).exit_code == 0);
  REQUIRE(ctl.Json({"key", "list", project})["keys"].size() == 2);

  // Disable and enable API access; the audit log shows all of it in order.
  REQUIRE(ctl({"project", "disable", project}).exit_code == 0);
  REQUIRE(ctl({"project", "enable", project}).exit_code == 0);
  json audit = ctl.Json({"audit", project});
  std::vector<std::string> actions;
  for (const json& e : audit["events"]) actions.push_back(e["action"]);
  REQUIRE(actions == std::vector<std::string>{"project.created", "key.created", "key.created",
                                              "key.value_read", "key.revoked", "key.rotated",
                                              "key.deleted", "project.api_access_disabled",
                                              "project.api_access_enabled"});
}

TEST_CASE("latchkeyctl prints a failed call's status in one line and exits non-zero") {
  testing::Cluster cluster;
  Ctl ctl{cluster, cluster.authority().admin_token_path()};
  CommandResult r = ctl({"key", "revoke", GenerateKeyId()});
  REQUIRE(r.exit_code == 1);
  REQUIRE(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  REQUIRE(r.err.rfind("error: revoke API key: NOT_FOUND: ", 0) == 0);

  json me = ctl.Json({"whoami"});
  REQUIRE(me["name"] == "admin");
  REQUIRE(me["role"] == "ROLE_ADMIN");

  Ctl anonymous{cluster, "/nonexistent/token"};
  CommandResult denied = anonymous({"project", "list"});
  REQUIRE(denied.exit_code == 1);
  REQUIRE(denied.err.find("UNAUTHENTICATED") != std::string::npos);
}

TEST_CASE("latchkeyctl role bind, list and unbind manage who holds which role where") {
  testing::Cluster cluster;
  Ctl ctl{cluster, cluster.authority().admin_token_path()};
  const std::string project = ctl.Json({"project", "create", "shop"})["project"]["projectId"];
  REQUIRE(ctl({"principal", "create", "ci", "--role", "MEMBER"}).exit_code == 0);

  CommandResult bound =
      ctl({"role", "bind", "--user", "bob@example.com", "--project", project, "--role", "MANAGER"});
  REQUIRE(bound.exit_code == 0);
  CHECK_THAT(bound.out,
             Catch::Contains("Bound user bob@example.com to MANAGER in project " + project));
  REQUIRE(ctl({"role", "bind", "--group", "platform", "--role", "ADMIN"}).exit_code == 0);
  REQUIRE(ctl({"role", "bind", "--principal", "ci", "--project", project, "--role", "MANAGER"})
              .exit_code == 0);
  // Exactly one subject, and no SIDECAR role, or the command refuses.
  CHECK(ctl({"role", "bind", "--user", "a", "--group", "b", "--role", "ADMIN"}).exit_code != 0);
  CHECK(ctl({"role", "bind", "--role", "ADMIN"}).exit_code != 0);
  CHECK(ctl({"role", "bind", "--user", "a", "--role", "SIDECAR"}).exit_code == 2);

  json all = ctl.Json({"role", "list"});
  REQUIRE(all["bindings"].size() == 3);
  json in_project = ctl.Json({"role", "list", "--project", project});
  REQUIRE(in_project["bindings"].size() == 2);
  const std::string id = in_project["bindings"][0]["bindingId"];
  CHECK_THAT(ctl({"role", "list"}).out, Catch::Contains("group platform"));

  CommandResult unbound = ctl({"role", "unbind", id});
  REQUIRE(unbound.exit_code == 0);
  CHECK(ctl.Json({"role", "list"})["bindings"].size() == 2);
  CHECK(ctl({"role", "unbind", id}).exit_code == 1);
  json audit = ctl.Json({"audit", project});
  CHECK(audit["events"].back()["action"] == "role.unbound");
}

TEST_CASE("a leak response: find the key from its value, revoke it, see who still sends it") {
  testing::Cluster cluster;
  SidecarOptions leaky;
  leaky.sidecar_id = "pod-leaky";
  leaky.usage_interval = absl::Milliseconds(100);
  SidecarServer& sidecar = cluster.AddSidecar(leaky);
  Ctl ctl{cluster, cluster.authority().admin_token_path()};
  const std::string project = ctl.Json({"project", "create", "Web shop"})["project"]["projectId"];
  json api = ctl.Json({"key", "generate", project, "--name", "ios app"});
  const std::string value = api["apiKey"], key_id = api["key"]["keyId"];

  // The value comes on standard input, never on the command line.
  CommandResult found = ctl({"key", "find"}, value + "\n");
  INFO(found.out << found.err);
  REQUIRE(found.exit_code == 0);
  REQUIRE(found.out.find("belongs to API key " + key_id + " (ios app) of project " + project) !=
          std::string::npos);
  REQUIRE(found.out.find("current value") != std::string::npos);
  REQUIRE(found.out.find(value) == std::string::npos);
  REQUIRE(ctl({"key", "find", value}).exit_code == 2);  // refused as an argument

  REQUIRE(cluster.AllCaughtUp());
  CommandResult revoked = ctl({"key", "find", "--revoke", "--wait", "5s"}, value);
  INFO(revoked.out << revoked.err);
  REQUIRE(revoked.exit_code == 0);
  REQUIRE(std::regex_search(revoked.out, std::regex("revoked; applied on 1/1 sidecars in")));

  // The sidecar keeps receiving the key: the authority learns who and how often.
  for (int i = 0; i < 7; ++i) REQUIRE(testing::Verdict(sidecar.address(), value) == v1::REVOKED);
  REQUIRE(testing::Eventually([&] {
    return ctl.Json({"key", "get", key_id}).value("rejectedSinceRevocation", "0") == "7";
  }));
  CommandResult get = ctl({"key", "get", key_id});
  INFO(get.out);
  REQUIRE(get.out.find("rejected since the revocation: 7") != std::string::npos);
  REQUIRE(std::regex_search(get.out, std::regex("pod-leaky +7 ")));

  // A secret key is deleted, not revoked: find says how.
  json secret = ctl.Json({"secret", "generate", project, "--name", "exports"});
  CommandResult no = ctl({"key", "find", "--revoke"}, std::string(secret["secretKey"]));
  REQUIRE(no.exit_code == 1);
  REQUIRE(no.err.find("latchkeyctl secret delete " + std::string(secret["key"]["keyId"])) !=
          std::string::npos);
  // One character changed (never to itself: a value ending in x stays whole).
  std::string mistyped = value;
  mistyped.back() = mistyped.back() == 'x' ? 'y' : 'x';
  CommandResult typo = ctl({"key", "find"}, mistyped);
  REQUIRE(typo.exit_code == 1);
  REQUIRE(typo.err.find("INVALID_ARGUMENT") != std::string::npos);
  CommandResult unknown = ctl({"key", "find"}, GenerateKey(v1::API_KEY));
  REQUIRE(unknown.exit_code == 1);
  REQUIRE(unknown.err.find("NOT_FOUND") != std::string::npos);
}

TEST_CASE("key list --unused shows the active keys nobody used within the duration") {
  testing::Cluster cluster;
  SidecarOptions fast;
  fast.usage_interval = absl::Milliseconds(50);
  SidecarServer& sidecar = cluster.AddSidecar(fast);
  Ctl ctl{cluster, cluster.authority().admin_token_path()};
  const std::string project = ctl.Json({"project", "create", "p"})["project"]["projectId"];
  json busy = ctl.Json({"key", "generate", project, "--name", "busy"});
  const std::string idle = ctl.Json({"key", "generate", project, "--name", "idle"})["key"]["keyId"];
  // The idle keys are 4 s old when busy is used, and the listing asks for
  // 3 s: busy's use stays inside the window unless the machine stalls the
  // listing for 3 s (1 s of margin once failed a loaded run).
  absl::SleepFor(absl::Seconds(4));
  REQUIRE(cluster.AllCaughtUp());
  REQUIRE(testing::Verdict(sidecar.address(), busy["apiKey"]) == v1::VALID);
  REQUIRE(testing::Eventually([&] {
    return ctl.Json({"key", "get", busy["key"]["keyId"]}).contains("lastUsedTime");
  }));

  std::set<std::string> names;
  const json listed = ctl.Json({"key", "list", project, "--unused", "3s"});
  INFO(listed.dump());
  for (const json& k : listed["keys"]) {
    names.insert(k["name"]);
  }
  REQUIRE(names == std::set<std::string>{"Legacy API key", "idle"});
  REQUIRE(ctl({"key", "list", project, "--unused", "soon"}).exit_code == 2);
}

TEST_CASE("audit --follow prints events as JSON lines and resumes after the authority restarts") {
  testing::Cluster cluster;
  Ctl ctl{cluster, cluster.authority().admin_token_path()};
  const std::string project = ctl.Json({"project", "create", "p"})["project"]["projectId"];
  testing::TempDir dir;
  testing::Subprocess follow(
      {testing::Binary("latchkeyctl"), "--authority", cluster.authority().address(), "--token-file",
       cluster.authority().admin_token_path(), "audit", project, "--follow", "-o", "json",
       "--interval", "50ms"},
      dir / "follow.log");
  REQUIRE(follow.WaitForLog("project.created", std::chrono::seconds(10)));
  REQUIRE(ctl({"key", "generate", project, "--name", "one"}).exit_code == 0);
  REQUIRE(follow.WaitForLog("name=one", std::chrono::seconds(10)));

  cluster.StopAuthority();
  REQUIRE(follow.WaitForLog("authority unreachable", std::chrono::seconds(10)));
  cluster.StartAuthority();
  Ctl again{cluster, cluster.authority().admin_token_path()};
  REQUIRE(again({"key", "generate", project, "--name", "two"}).exit_code == 0);
  REQUIRE(follow.WaitForLog("name=two", std::chrono::seconds(15)));
  follow.Signal(SIGTERM);
  follow.Wait();

  std::vector<std::string> actions;
  uint64_t last = 0;
  std::istringstream lines(follow.Log());
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;  // warnings are not events
    json e = json::parse(line);
    const uint64_t revision = std::stoull(std::string(e["revision"]));
    REQUIRE(revision > last);  // in order, nothing twice
    last = revision;
    actions.push_back(e["action"]);
  }
  REQUIRE(actions == std::vector<std::string>{"project.created", "key.created", "key.created"});
}

TEST_CASE("latchkeyctl takes global options after the subcommand and shows examples in help") {
  testing::Cluster cluster;
  Ctl ctl{cluster, cluster.authority().admin_token_path()};
  const std::string project = ctl.Json({"project", "create", "p"})["project"]["projectId"];
  CommandResult after = ctl({"key", "list", project, "-o", "json"});
  INFO(after.err);
  REQUIRE(after.exit_code == 0);
  REQUIRE(json::parse(after.out)["keys"].size() == 1);

  const std::vector<std::vector<std::string>> commands = {{},
                                                          {"project"},
                                                          {"key"},
                                                          {"secret"},
                                                          {"principal"},
                                                          {"whoami"},
                                                          {"propagation"},
                                                          {"health"},
                                                          {"project", "get"},
                                                          {"project", "create"},
                                                          {"project", "list"},
                                                          {"key", "generate"},
                                                          {"key", "list"},
                                                          {"key", "find"},
                                                          {"key", "revoke"},
                                                          {"key", "rotate"},
                                                          {"secret", "delete"},
                                                          {"audit"},
                                                          {"principal", "create"},
                                                          {"validate"},
                                                          {"completion"}};
  for (std::vector<std::string> command : commands) {
    command.push_back("--help");
    CommandResult help = ctl(command);
    INFO(help.out);
    REQUIRE(help.exit_code == 0);
    const size_t example = help.out.find("\nExample:\n  ");
    REQUIRE(example != std::string::npos);
    REQUIRE(help.out.find("latchkeyctl " + (command.size() > 1 ? command[0] : ""), example) !=
            std::string::npos);
  }
}

TEST_CASE("latchkeyctl completion bash completes subcommands and their options") {
  testing::TempDir dir;
  CommandResult script =
      testing::RunCommand({testing::Binary("latchkeyctl"), "completion", "bash"});
  REQUIRE(script.exit_code == 0);
  std::ofstream(dir / "completion.bash") << script.out;
  auto complete = [&](const std::string& words, int cword) {
    CommandResult r = testing::RunCommand({"/bin/bash", "-c",
                                           "source " + dir / "completion.bash" + "; COMP_WORDS=(" +
                                               words + "); COMP_CWORD=" + std::to_string(cword) +
                                               "; _latchkeyctl; echo \"${COMPREPLY[*]}\""});
    REQUIRE(r.exit_code == 0);
    return r.out;
  };
  REQUIRE(complete("latchkeyctl k", 1) == "key\n");
  REQUIRE(complete("latchkeyctl key l", 2) == "list\n");
  REQUIRE(complete("latchkeyctl key list prj_x --un", 4) == "--unused\n");
  REQUIRE(complete("latchkeyctl -o json key find --rev", 5) == "--revoke\n");
  REQUIRE(complete("latchkeyctl audit --f", 2) == "--follow\n");
}

TEST_CASE("a project's leak policy is set from the CLI, and key get shows a reported leak") {
  testing::Cluster cluster;
  Ctl ctl{cluster, cluster.authority().admin_token_path()};
  const json created = ctl.Json({"project", "create", "Web shop"});
  const std::string project = created["project"]["projectId"];
  REQUIRE(created["project"]["leakPolicy"] == "LEAK_POLICY_NOTIFY");
  CommandResult set = ctl({"project", "set-leak-policy", project, "revoke"});
  INFO(set.out << set.err);
  REQUIRE(set.exit_code == 0);
  REQUIRE(set.out.find("stops at once") != std::string::npos);
  REQUIRE(ctl.Json({"project", "get", project})["leakPolicy"] == "LEAK_POLICY_REVOKE");
  REQUIRE(std::regex_search(ctl({"project", "get", project}).out, std::regex(" revoke ")));
  REQUIRE(ctl({"project", "set-leak-policy", project, "delete"}).exit_code == 2);

  // GitHub reports the API key found in public: the policy revokes it.
  json api = ctl.Json({"key", "generate", project, "--name", "ios app"});
  const Caller github{"", "github-secret-scanning", v1::ROLE_UNSPECIFIED};
  REQUIRE(*cluster.authority().authority().ReportLeak(
      github, {std::string(api["apiKey"]), "https://github.com/o/r/blob/1/app.js", "content"}));
  CommandResult get = ctl({"key", "get", std::string(api["key"]["keyId"])});
  INFO(get.out);
  REQUIRE(get.out.find("REVOKED (LEAKED)") != std::string::npos);
  REQUIRE(get.out.find("at https://github.com/o/r/blob/1/app.js") != std::string::npos);
  REQUIRE(get.out.find(std::string(api["apiKey"])) == std::string::npos);
}

TEST_CASE("latchkeyctl registers a webhook, shows its deliveries, pings it and deletes it") {
  testing::Cluster cluster;
  testing::WebhookReceiver receiver;
  Ctl ctl{cluster, cluster.authority().admin_token_path()};
  const std::string project = ctl.Json({"project", "create", "Web shop"})["project"]["projectId"];

  CommandResult created =
      ctl({"webhook", "create", receiver.url(), "--events", "key.created, key.revoked"});
  INFO(created.out << created.err);
  REQUIRE(created.exit_code == 0);
  std::smatch m;
  REQUIRE(std::regex_search(created.out, m, std::regex("whk_[0-9A-Za-z]{16}")));
  const std::string id = m.str();
  REQUIRE(std::regex_search(created.out, std::regex("whsec_[0-9A-Za-z]{32}")));
  REQUIRE(ctl({"webhook", "create", receiver.url(), "--events", "key.exploded"}).exit_code != 0);
  REQUIRE(ctl({"webhook", "create", receiver.url(), "--events", "key.created", "--format", "xml"})
              .exit_code == 2);

  REQUIRE(ctl.Json({"key", "generate", project, "--name", "ios"})["key"]["keyId"] != "");
  REQUIRE(testing::Eventually([&] { return receiver.delivered().size() == 1; }));
  CommandResult listed = ctl({"webhook", "list"});
  REQUIRE(listed.exit_code == 0);
  REQUIRE(listed.out.find(id) != std::string::npos);
  REQUIRE(listed.out.find("key.created,key.revoked") != std::string::npos);
  REQUIRE(listed.out.find("HEALTHY") != std::string::npos);
  // The attempt is recorded just after the receiver answered it.
  json deliveries;
  REQUIRE(testing::Eventually([&] {
    deliveries = ctl.Json({"webhook", "deliveries", id});
    return deliveries.value("deliveries", json::array()).size() == 1;
  }));
  REQUIRE(deliveries["deliveries"][0]["eventType"] == "key.created");
  REQUIRE(deliveries["deliveries"][0]["statusCode"] == 200);
  REQUIRE(ctl({"webhook", "deliveries", id}).out.find("delivered") != std::string::npos);

  CommandResult ping = ctl({"webhook", "test", id});
  INFO(ping.out << ping.err);
  REQUIRE(ping.exit_code == 0);
  REQUIRE(ping.out.find("ping") != std::string::npos);
  receiver.Answer(500);
  REQUIRE(ctl({"webhook", "test", id}).exit_code == 1);  // the receiver refused it

  CommandResult deleted = ctl({"webhook", "delete", id});
  REQUIRE(deleted.exit_code == 0);
  REQUIRE(ctl.Json({"webhook", "list"}).value("webhooks", json::array()).empty());
  REQUIRE(ctl({"webhook", "delete", id}).exit_code != 0);
}

}  // namespace
}  // namespace latchkey
