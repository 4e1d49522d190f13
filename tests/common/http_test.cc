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

}  // namespace
}  // namespace latchkey
