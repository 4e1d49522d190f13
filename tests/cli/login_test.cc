// latchkeyctl login and logout: the code flow with PKCE on a loopback
// redirect against a scripted provider (tests/testing/test_issuer.h), the
// saved sign-in, its refresh, and the real binary acting as the person.
#include "cli/login.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/testing/cluster.h"
#include "tests/testing/test_issuer.h"

namespace latchkey {
namespace {

using nlohmann::json;
using testing::TestIssuer;

// Plays the person's browser: visits the provider (which approves at once)
// and follows its redirect back to latchkeyctl's loopback port.
absl::StatusOr<cli::SavedLogin> LogIn(TestIssuer& issuer) {
  std::thread browser;
  cli::LoginOptions options;
  options.issuer = issuer.url();
  options.client_id = TestIssuer::kClientId;
  options.wait = absl::Seconds(20);
  absl::StatusOr<cli::SavedLogin> login = cli::Login(options, [&](const std::string& url) {
    browser = std::thread([url, &issuer] {
      httplib::Client provider(issuer.url());
      httplib::Result approved = provider.Get(url.substr(issuer.url().size()));
      if (!approved || approved->status != 302) return;
      const std::string back = approved->get_header_value("Location");
      const std::string origin = back.substr(0, back.find('/', std::string("http://").size()));
      httplib::Client(origin).Get(back.substr(origin.size()));
    });
  });
  if (browser.joinable()) browser.join();
  return login;
}

TEST_CASE(
    "latchkeyctl login signs in on a loopback redirect, and later commands act as the "
    "person until logout") {
  TestIssuer issuer;
  issuer.AddKey("ES256");
  issuer.AllowPublicClient();
  issuer.SetUser("alice@example.com", {"platform"});
  AuthorityOptions options;
  options.oidc.issuer_url = issuer.url();
  options.oidc.client_id = TestIssuer::kClientId;
  testing::Cluster cluster(options);
  v1::CreateRoleBindingRequest bind;
  bind.set_group("platform");
  bind.set_role(v1::ROLE_MEMBER);
  v1::RoleBinding made;
  REQUIRE(cluster.admin().Call(&v1::KeyAdmin::Stub::CreateRoleBinding, bind, &made).ok());

  absl::StatusOr<cli::SavedLogin> login = LogIn(issuer);
  REQUIRE(login.ok());
  CHECK_FALSE(login->refresh_token.empty());
  testing::TempDir config;
  const std::string path = config / "credentials.json";
  REQUIRE(cli::SaveLogin(path, *login).ok());
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  const std::vector<std::string> env = {"LATCHKEY_CONFIG_DIR=" + config.path()};
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(),
                {testing::Binary("latchkeyctl"), "--authority", cluster.authority().address()});
    return testing::RunCommand(args, "", env);
  };
  testing::CommandResult me = ctl({"-o", "json", "whoami"});
  INFO(me.err);
  REQUIRE(me.exit_code == 0);
  const json who = json::parse(me.out);
  CHECK(who["name"] == "alice@example.com");
  CHECK(who["credential"] == "oidc");
  CHECK(who["bindings"][0]["group"] == "platform");
  testing::CommandResult table = ctl({"whoami"});
  CHECK_THAT(table.out, Catch::Contains("credential from: latchkeyctl login (" + path + ")"));
  CHECK_THAT(table.out, Catch::Contains("OIDC ID token"));
  // An explicit token file still wins over the saved sign-in.
  testing::CommandResult admin =
      ctl({"--token-file", cluster.authority().admin_token_path(), "-o", "json", "whoami"});
  REQUIRE(admin.exit_code == 0);
  CHECK(json::parse(admin.out)["name"] == "admin");

  testing::CommandResult out = ctl({"logout"});
  REQUIRE(out.exit_code == 0);
  CHECK_FALSE(std::filesystem::exists(path));
  testing::CommandResult gone = ctl({"whoami"});
  CHECK(gone.exit_code == 1);
  CHECK_THAT(gone.err, Catch::Contains("latchkeyctl login"));
}

TEST_CASE(
    "a saved sign-in is refreshed near its end, and a refused refresh asks to log in "
    "again") {
  TestIssuer issuer;
  issuer.AddKey("RS256");
  issuer.AllowPublicClient();
  issuer.SetIdTokenTtl(absl::Seconds(30));  // within the minute before its end at once
  absl::StatusOr<cli::SavedLogin> login = LogIn(issuer);
  REQUIRE(login.ok());
  testing::TempDir config;
  const std::string path = config / "credentials.json";
  REQUIRE(cli::SaveLogin(path, *login).ok());

  absl::StatusOr<std::string> fresh = cli::CurrentIdToken(path);
  REQUIRE(fresh.ok());
  CHECK(issuer.token_requests("refresh_token") == 1);
  // The rotated refresh token was saved: the old one is spent at the provider.
  absl::StatusOr<std::optional<cli::SavedLogin>> saved = cli::LoadLogin(path);
  REQUIRE(saved.ok());
  REQUIRE(saved->has_value());
  CHECK((*saved)->refresh_token != login->refresh_token);
  CHECK((*saved)->id_token == *fresh);
  REQUIRE(cli::CurrentIdToken(path).ok());
  CHECK(issuer.token_requests("refresh_token") == 2);

  issuer.RefuseRefresh();
  absl::StatusOr<std::string> ended = cli::CurrentIdToken(path);
  REQUIRE(ended.status().code() == absl::StatusCode::kUnauthenticated);
  CHECK_THAT(std::string(ended.status().message()), Catch::Contains("latchkeyctl login"));
}

TEST_CASE(
    "a login the person never finishes gives up, and a stray request to the port is "
    "ignored") {
  TestIssuer issuer;
  issuer.AddKey("RS256");
  cli::LoginOptions options;
  options.issuer = issuer.url();
  options.client_id = TestIssuer::kClientId;
  options.wait = absl::Milliseconds(500);
  int stray_status = 0;
  absl::StatusOr<cli::SavedLogin> login = cli::Login(options, [&](const std::string& url) {
    // Another page hits the loopback port without the sign-in's state.
    const std::string prefix = "redirect_uri=http%3A%2F%2F127.0.0.1%3A";
    const size_t at = url.find(prefix);
    REQUIRE(at != std::string::npos);
    const int port = std::stoi(url.substr(at + prefix.size()));
    httplib::Result stray = httplib::Client("127.0.0.1", port).Get("/callback?code=c&state=guess");
    stray_status = stray ? stray->status : -1;
  });
  CHECK(stray_status == 400);
  CHECK(login.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(issuer.token_requests("authorization_code") == 0);
}

}  // namespace
}  // namespace latchkey
