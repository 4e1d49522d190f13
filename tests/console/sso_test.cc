// "Sign in with SSO" end to end in C++: the console's /oidc/ routes against
// a scripted provider (tests/testing/test_issuer.h) and a real authority that
// verifies the ID tokens. The browser test (console.test.mjs) runs the same
// flow through a real provider's login page.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "console/console_server.h"
#include "tests/testing/certs.h"
#include "tests/testing/cluster.h"
#include "tests/testing/test_issuer.h"

namespace latchkey::console {
namespace {

using nlohmann::json;
using testing::TestIssuer;

struct SsoConsole {
  TestIssuer issuer;
  testing::TempDir dir;
  std::unique_ptr<testing::Cluster> cluster;
  std::unique_ptr<ConsoleServer> server;
  std::unique_ptr<httplib::Client> browser;
  std::string origin;

  explicit SsoConsole(bool token_sign_in = true, bool https = false) {
    issuer.AddKey("RS256");
    issuer.SetUser("alice@example.com", {"platform"});
    AuthorityOptions authority;
    authority.oidc.issuer_url = issuer.url();
    authority.oidc.client_id = TestIssuer::kClientId;
    cluster = std::make_unique<testing::Cluster>(authority);
    v1::CreateRoleBindingRequest bind;
    bind.set_group("platform");
    bind.set_role(v1::ROLE_ADMIN);
    v1::RoleBinding made;
    REQUIRE(cluster->admin().Call(&v1::KeyAdmin::Stub::CreateRoleBinding, bind, &made).ok());

    std::ofstream(dir / "secret") << TestIssuer::kClientSecret << "\n";
    ConsoleOptions options;
    options.listen = "127.0.0.1:0";
    options.authority = cluster->authority().address();
    options.oidc.issuer_url = issuer.url();
    options.oidc.client_id = TestIssuer::kClientId;
    options.oidc_client_secret_file = dir / "secret";
    options.token_sign_in = token_sign_in;
    if (https) {
      const testing::Pem ca = testing::SelfSigned("latchkey test CA", true);
      const testing::Pem cert = testing::Issue(ca, "console");
      std::ofstream(dir / "console.pem") << cert.cert;
      std::ofstream(dir / "console.key") << cert.key;
      options.tls_cert = dir / "console.pem";
      options.tls_key = dir / "console.key";
    }
    absl::StatusOr<std::unique_ptr<ConsoleServer>> started = ConsoleServer::Start(options);
    REQUIRE(started.ok());
    server = *std::move(started);
    origin = (https ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(server->port());
    browser = std::make_unique<httplib::Client>(origin);
    browser->enable_server_certificate_verification(false);
  }

  // Runs the flow as a browser would, following each redirect by hand; the
  // Set-Cookie header the callback answered.
  std::string SignIn() {
    httplib::Result login = browser->Get("/oidc/login");
    REQUIRE(login);
    REQUIRE(login->status == 302);
    const std::string to_provider = login->get_header_value("Location");
    // The browser keeps the sign-in's own cookie for the callback.
    const std::string sign_in = login->get_header_value("Set-Cookie");
    CHECK_THAT(sign_in, Catch::Contains("; Path=/oidc/callback"));
    CHECK_THAT(sign_in, Catch::Contains("; HttpOnly"));
    CHECK_THAT(sign_in, Catch::Contains("; SameSite=Lax"));
    sign_in_cookie_ = sign_in.substr(0, sign_in.find(';'));
    REQUIRE(to_provider.rfind(issuer.url() + "/authorize?", 0) == 0);
    CHECK_THAT(to_provider, Catch::Contains("code_challenge_method=S256"));
    CHECK_THAT(to_provider, Catch::Contains("&nonce="));
    CHECK_THAT(to_provider, Catch::Contains("&state="));
    httplib::Client provider(issuer.url());
    httplib::Result approved = provider.Get(to_provider.substr(issuer.url().size()));
    REQUIRE(approved);
    REQUIRE(approved->status == 302);
    back_ = approved->get_header_value("Location");
    REQUIRE(back_.rfind(origin + "/oidc/callback?", 0) == 0);
    httplib::Result callback =
        browser->Get(back_.substr(origin.size()), {{"Cookie", sign_in_cookie_}});
    REQUIRE(callback);
    INFO(callback->body);
    REQUIRE(callback->status == 302);
    CHECK(callback->get_header_value("Location") == "/");
    // The session's cookie, and the sign-in's cleared.
    std::string session;
    bool cleared = false;
    for (auto [it, end] = callback->headers.equal_range("Set-Cookie"); it != end; ++it) {
      if (it->second.rfind("latchkey_session=", 0) == 0) session = it->second;
      cleared = cleared || it->second.rfind("latchkey_sign_in=; ", 0) == 0;
    }
    CHECK(cleared);
    return session;
  }
  // The cookie /oidc/login set for the last sign-in.
  std::string sign_in_cookie() const { return sign_in_cookie_; }
  // The callback URL path the provider sent the browser back to.
  std::string callback_path() const { return back_.substr(origin.size()); }

  httplib::Result Api(const std::string& method, const httplib::Headers& headers) {
    return browser->Post(("/api/v1/" + method).c_str(), headers, "{}", "application/json");
  }

 private:
  std::string back_;
  std::string sign_in_cookie_;
};

// "latchkey_session=<value>" from a Set-Cookie header.
std::string CookiePair(const std::string& set_cookie) {
  return set_cookie.substr(0, set_cookie.find(';'));
}

TEST_CASE("Sign in with SSO: code flow with PKCE, then the page's calls carry the person") {
  SsoConsole c;
  const std::string set_cookie = c.SignIn();
  REQUIRE(set_cookie.rfind("latchkey_session=", 0) == 0);
  CHECK_THAT(set_cookie, Catch::Contains("; HttpOnly"));
  CHECK_THAT(set_cookie, Catch::Contains("; SameSite=Strict"));
  CHECK_THAT(set_cookie, !Catch::Contains("Secure"));  // plain HTTP on loopback
  // The cookie is opaque: no token in it.
  CHECK(CookiePair(set_cookie).size() < 80);

  httplib::Result me = c.Api("WhoAmI", {{"Cookie", CookiePair(set_cookie)}, {"Origin", c.origin}});
  REQUIRE(me);
  REQUIRE(me->status == 200);
  const json who = json::parse(me->body);
  CHECK(who["name"] == "alice@example.com");
  CHECK(who["credential"] == "oidc");
  // As an ADMIN through her group, alice creates a project; it names her.
  httplib::Result made = c.browser->Post("/api/v1/CreateProject",
                                         {{"Cookie", CookiePair(set_cookie)}, {"Origin", c.origin}},
                                         R"({"name":"shop"})", "application/json");
  REQUIRE(made);
  REQUIRE(made->status == 200);
  CHECK(json::parse(made->body)["project"]["createdBy"] == "alice@example.com");

  // The provider's callback works once.
  httplib::Result replay = c.browser->Get(c.callback_path(), {{"Cookie", c.sign_in_cookie()}});
  REQUIRE(replay);
  CHECK(replay->status == 400);
  CHECK(replay->get_header_value("Set-Cookie").empty());
}

TEST_CASE("over HTTPS the session cookie is Secure too") {
  SsoConsole c(/*token_sign_in=*/true, /*https=*/true);
  const std::string set_cookie = c.SignIn();
  CHECK_THAT(set_cookie, Catch::Contains("; HttpOnly"));
  CHECK_THAT(set_cookie, Catch::Contains("; SameSite=Strict"));
  CHECK_THAT(set_cookie, Catch::EndsWith("; Secure"));
  httplib::Result me = c.Api("WhoAmI", {{"Cookie", CookiePair(set_cookie)}, {"Origin", c.origin}});
  REQUIRE(me);
  CHECK(me->status == 200);
}

TEST_CASE("a session cookie works only for the console's own page") {
  SsoConsole c;
  const std::string cookie = CookiePair(c.SignIn());
  // No Origin and no Sec-Fetch-Site, another origin, another site: refused.
  for (const httplib::Headers& headers :
       {httplib::Headers{{"Cookie", cookie}},
        httplib::Headers{{"Cookie", cookie}, {"Origin", "https://evil.example"}},
        httplib::Headers{{"Cookie", cookie}, {"Sec-Fetch-Site", "cross-site"}}}) {
    httplib::Result r = c.Api("ListProjects", headers);
    REQUIRE(r);
    CHECK(r->status == 403);
    CHECK(json::parse(r->body)["code"] == "PERMISSION_DENIED");
  }
  httplib::Result fetched =
      c.Api("ListProjects", {{"Cookie", cookie}, {"Sec-Fetch-Site", "same-origin"}});
  REQUIRE(fetched);
  CHECK(fetched->status == 200);
  // A cookie the console never issued is no session.
  httplib::Result forged =
      c.Api("ListProjects", {{"Cookie", "latchkey_session=abc"}, {"Origin", c.origin}});
  REQUIRE(forged);
  CHECK(forged->status == 401);
}

TEST_CASE(
    "the console refreshes an ID token before it expires, and asks to sign in again when "
    "it cannot") {
  SsoConsole c;
  c.issuer.SetIdTokenTtl(absl::Seconds(30));  // inside the 60 s refresh window at once
  const std::string cookie = CookiePair(c.SignIn());
  const httplib::Headers headers = {{"Cookie", cookie}, {"Origin", c.origin}};
  httplib::Result first = c.Api("WhoAmI", headers);
  REQUIRE(first);
  CHECK(first->status == 200);
  CHECK(c.issuer.token_requests("refresh_token") >= 1);

  c.issuer.RefuseRefresh();  // signed out at the provider
  httplib::Result ended = c.Api("WhoAmI", headers);
  REQUIRE(ended);
  CHECK(ended->status == 401);
  CHECK_THAT(json::parse(ended->body)["message"].get<std::string>(),
             Catch::Contains("sign in again"));
  // The session is gone, not retried: the next call does not ask the provider.
  const int refreshes = c.issuer.token_requests("refresh_token");
  CHECK(c.Api("WhoAmI", headers)->status == 401);
  CHECK(c.issuer.token_requests("refresh_token") == refreshes);
}

TEST_CASE("signing out forgets the session, and a pasted token can be turned off") {
  SsoConsole c(/*token_sign_in=*/false);
  const std::string cookie = CookiePair(c.SignIn());
  httplib::Result config = c.browser->Get("/oidc/config");
  REQUIRE(config);
  CHECK(json::parse(config->body) == json{{"sso", true}, {"tokenSignIn", false}});
  // A pasted (valid) admin token is refused before the authority.
  httplib::Result pasted =
      c.Api("ListProjects",
            {{"Authorization",
              "Bearer " + testing::TokenFrom(c.cluster->authority().admin_token_path())}});
  REQUIRE(pasted);
  CHECK(pasted->status == 401);

  httplib::Result out = c.browser->Post(
      "/oidc/sign-out", {{"Cookie", cookie}, {"Origin", c.origin}}, "", "application/json");
  REQUIRE(out);
  CHECK(out->status == 200);
  CHECK_THAT(out->get_header_value("Set-Cookie"), Catch::Contains("Max-Age=0"));
  httplib::Result after = c.Api("WhoAmI", {{"Cookie", cookie}, {"Origin", c.origin}});
  REQUIRE(after);
  CHECK(after->status == 401);
}

TEST_CASE("a callback link begun in another browser signs nobody in (login CSRF)") {
  SsoConsole c;
  // The attacker begins a sign-in and approves it at the provider as
  // themselves, then sends the victim the callback link.
  httplib::Client attacker("127.0.0.1", c.server->port());
  httplib::Result login = attacker.Get("/oidc/login");
  REQUIRE(login);
  const std::string to_provider = login->get_header_value("Location");
  httplib::Client provider(c.issuer.url());
  httplib::Result approved = provider.Get(to_provider.substr(c.issuer.url().size()));
  REQUIRE(approved);
  const std::string link = approved->get_header_value("Location");
  // The victim's browser has no sign-in cookie for that state.
  httplib::Result victim = c.browser->Get(link.substr(c.origin.size()));
  REQUIRE(victim);
  CHECK(victim->status == 400);
  CHECK_THAT(victim->body, Catch::Contains("not started in this browser"));
  CHECK(victim->get_header_value("Set-Cookie").empty());
  CHECK(c.issuer.token_requests("authorization_code") == 0);
}

TEST_CASE("a sign-in the provider refuses, or a stale state, opens no session") {
  SsoConsole c;
  httplib::Result denied = c.browser->Get("/oidc/callback?error=access_denied&state=x");
  REQUIRE(denied);
  CHECK(denied->status == 400);
  CHECK_THAT(denied->body, Catch::Contains("access_denied"));
  httplib::Result unknown = c.browser->Get("/oidc/callback?code=code-1&state=made-up",
                                           {{"Cookie", "latchkey_sign_in=made-up"}});
  REQUIRE(unknown);
  CHECK(unknown->status == 400);
  CHECK(unknown->get_header_value("Set-Cookie").empty());
  CHECK(c.issuer.token_requests("authorization_code") == 0);
}

}  // namespace
}  // namespace latchkey::console
