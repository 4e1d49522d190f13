// The HTTP server helper that the metrics and console servers share.
#include "common/http.h"

#include <httplib.h>

#include <catch2/catch.hpp>

namespace latchkey {
namespace {

TEST_CASE("an HTTP server stopped right after it starts always returns") {
  // httplib's stop() is lost if it comes before the loop runs; before
  // ServeInBackground waited for it, about one in a few such pairs hung.
  for (int i = 0; i < 200; ++i) {
    httplib::Server server;
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok", "text/plain");
    });
    const int port = server.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    std::thread thread = ServeInBackground(&server);
    if (i == 0) {
      httplib::Client client("127.0.0.1", port);
      httplib::Result res = client.Get("/");
      REQUIRE(res);
      REQUIRE(res->body == "ok");
    }
    server.stop();
    thread.join();
  }
}

TEST_CASE("a webhook URL is split for a client, and anything else is refused") {
  absl::StatusOr<HttpUrl> url = ParseHttpUrl("https://hooks.example.com/services/T0/B0?x=1");
  REQUIRE(url.ok());
  CHECK(url->tls);
  CHECK(url->host == "hooks.example.com");
  CHECK(url->port == 443);
  CHECK(url->path == "/services/T0/B0?x=1");
  CHECK(url->origin() == "https://hooks.example.com:443");
  // As a browser's Origin header writes it: no default port, lower case.
  CHECK(url->web_origin() == "https://hooks.example.com");
  CHECK(ParseHttpUrl("https://Console.Example.com:8443/x")->web_origin() ==
        "https://console.example.com:8443");
  CHECK(ParseHttpUrl("http://console.example.com:80/")->web_origin() ==
        "http://console.example.com");
  CHECK_FALSE(url->local());

  url = ParseHttpUrl("HTTP://127.0.0.1:8080");
  REQUIRE(url.ok());
  CHECK_FALSE(url->tls);
  CHECK(url->port == 8080);
  CHECK(url->path == "/");
  CHECK(url->local());
  CHECK(ParseHttpUrl("http://[::1]:9/hook")->local());
  CHECK(ParseHttpUrl("http://localhost/hook")->local());
  CHECK(ParseHttpUrl("http://example.com?q")->path == "/?q");
  // Names are not resolved, and "unix" is a name here, not a socket.
  CHECK_FALSE(ParseHttpUrl("http://127.example.com/")->local());
  CHECK_FALSE(ParseHttpUrl("http://unix:80/hook")->local());

  for (const char* bad :
       {"ftp://example.com/", "example.com/hook", "https://", "https:///path", "https://[::1/x",
        "https://exa mple.com/", "https://user:pw@example.com/", "https://example.com:0/",
        "https://example.com:65536/", "https://example.com:x/", "https://example.com/#frag",
        "https://ex_ample.com/", "https://example.com/\n"}) {
    INFO(bad);
    CHECK(ParseHttpUrl(bad).status().code() == absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace latchkey
