// Listen addresses: what counts as loopback, and host:port splitting.
#include "common/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <set>

namespace latchkey {
namespace {

TEST_CASE("only real loopback addresses and unix sockets count as local") {
  struct Case {
    std::string address;
    bool local;
  };
  const Case c = GENERATE(
      Case{"127.0.0.1:7700", true}, Case{"127.8.9.10:1", true}, Case{"localhost:7700", true},
      Case{"[::1]:7700", true}, Case{"unix:/run/latchkey.sock", true}, Case{"0.0.0.0:7700", false},
      Case{"10.0.0.1:7700", false}, Case{"[::]:7700", false}, Case{"127.example.com:7700", false},
      Case{"127.0.0.1.nip.io:80", false}, Case{"localhost.evil.com:1", false},
      Case{"[::1.evil]:1", false}, Case{"1270.0.0.1:1", false}, Case{"example.com:7700", false},
      Case{"[::ffff:127.0.0.1]:7700", true}, Case{":7700", false});
  INFO(c.address);
  REQUIRE(IsLocalAddress(c.address) == c.local);
}

TEST_CASE("host:port splits, brackets off IPv6 hosts, and bad forms name the flag") {
  absl::StatusOr<HostPort> v4 = SplitHostPort("127.0.0.1:7720", "--listen");
  REQUIRE(v4.ok());
  REQUIRE(v4->host == "127.0.0.1");
  REQUIRE(v4->port == 7720);
  absl::StatusOr<HostPort> v6 = SplitHostPort("[::1]:0", "--listen");
  REQUIRE(v6.ok());
  REQUIRE(v6->host == "::1");
  REQUIRE(v6->port == 0);
  for (const char* bad : {"7720", "host:", "host:http", "host:70000", ":1"}) {
    absl::StatusOr<HostPort> r = SplitHostPort(bad, "--metrics-listen");
    REQUIRE(absl::IsInvalidArgument(r.status()));
    REQUIRE(r.status().message().find("--metrics-listen") != std::string::npos);
  }
}

TEST_CASE("one authority address is the target as given, several IP literals one failover target") {
  REQUIRE(*ClientTarget("authority.latchkey:7700", "--authority") == "authority.latchkey:7700");
  REQUIRE(*ClientTarget("127.0.0.1:7700,127.0.0.2:7701", "--authority") ==
          "ipv4:127.0.0.1:7700,127.0.0.2:7701");
  REQUIRE(*ClientTarget("[::1]:7700,[::1]:7701", "--authority") == "ipv6:[::1]:7700,[::1]:7701");
  for (const char* bad : {"a.example:1,b.example:2", "127.0.0.1:1,[::1]:2", "127.0.0.1:1,",
                          "127.0.0.1:1,127.0.0.2"}) {
    absl::StatusOr<std::string> r = ClientTarget(bad, "--authority");
    INFO(bad);
    REQUIRE(absl::IsInvalidArgument(r.status()));
    REQUIRE(r.status().message().find("--authority") != std::string::npos);
  }
}

TEST_CASE("an endpoint list splits on commas, and an empty endpoint is refused") {
  REQUIRE(*ParseEndpoints("127.0.0.1:2379") == std::vector<std::string>{"127.0.0.1:2379"});
  REQUIRE(*ParseEndpoints("a:1,b:2,[::1]:3") == std::vector<std::string>{"a:1", "b:2", "[::1]:3"});
  for (const char* bad : {"", ",", "a:1,", ",a:1", "a:1,,b:2"}) {
    INFO(bad);
    REQUIRE(absl::IsInvalidArgument(ParseEndpoints(bad).status()));
  }
}

TEST_CASE("picked ports are free, distinct, and never ones outgoing connections are given") {
  std::set<int> seen;
  for (int i = 0; i < 50; ++i) {
    const int port = PickFreePort();
    INFO(port);
    CHECK(port >= 1024);
    CHECK(port < EphemeralPortsStart());
    CHECK(seen.insert(port).second);
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    CHECK(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    close(fd);
  }
}

}  // namespace
}  // namespace latchkey
