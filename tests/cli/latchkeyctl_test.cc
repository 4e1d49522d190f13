// latchkeyctl as a user runs it: a real process against real servers.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <regex>

#include "common/key_format.h"
#include "tests/testing/cluster.h"

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
                                              "key.revoked", "key.rotated", "key.deleted",
                                              "project.api_access_disabled",
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

}  // namespace
}  // namespace latchkey
