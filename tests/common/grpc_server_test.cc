// common/grpc_server.h: the listeners every latchkey gRPC server shares.
#include "common/grpc_server.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "tests/testing/testing.h"

namespace latchkey {
namespace {

// A server with no services on `options`' listeners, as latchkey's servers
// start theirs; `ports` gets the TCP ports bound.
absl::StatusOr<std::unique_ptr<grpc::Server>> Listen(const ListenOptions& options,
                                                     std::vector<int>& ports) {
  grpc::ServerBuilder builder;
  REQUIRE(AddListeners(builder, options, ports).ok());
  return StartServer(builder, options, ports);
}

TEST_CASE("a server listens on loopback TCP (port 0) and on a unix socket made 0660") {
  EnableServerPlugins();
  testing::TempDir dir;
  ListenOptions options({"127.0.0.1:0", "unix:" + (dir / "grpc.sock")});
  std::vector<int> ports;
  absl::StatusOr<std::unique_ptr<grpc::Server>> server = Listen(options, ports);
  REQUIRE(server.ok());
  REQUIRE(ports[0] > 0);   // the port bound for 127.0.0.1:0
  REQUIRE(ports[1] == 0);  // none for a socket
  struct stat st {};
  REQUIRE(::stat((dir / "grpc.sock").c_str(), &st) == 0);
  REQUIRE((st.st_mode & 0777) == 0660);
  for (const std::string& target :
       {"127.0.0.1:" + std::to_string(ports[0]), "unix:" + (dir / "grpc.sock")}) {
    auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
    INFO(target);
    REQUIRE(channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)));
  }
  (*server)->Shutdown();
}

TEST_CASE("plaintext beyond loopback is refused unless allowed, and TLS is allowed") {
  grpc::ServerBuilder builder;
  std::vector<int> ports;
  absl::Status none = AddListeners(builder, ListenOptions(), ports);
  REQUIRE(absl::IsInvalidArgument(none));
  REQUIRE(std::string(none.message()) == "no --listen address");

  ListenOptions remote({"127.0.0.1:0", "0.0.0.0:0"});
  absl::Status refused = AddListeners(builder, remote, ports);
  REQUIRE(absl::IsInvalidArgument(refused));
  REQUIRE_THAT(std::string(refused.message()),
               Catch::Contains("refusing to listen on 0.0.0.0:0 without TLS"));

  // Added, not started: nothing is bound beyond loopback here.
  remote.allow_insecure_remote = true;
  grpc::ServerBuilder allowed;
  REQUIRE(AddListeners(allowed, remote, ports).ok());
  ListenOptions tls({"0.0.0.0:0"});
  tls.tls = grpc::SslServerCredentials(grpc::SslServerCredentialsOptions());
  grpc::ServerBuilder with_tls;
  REQUIRE(AddListeners(with_tls, tls, ports).ok());
}

TEST_CASE("an address that cannot be bound is INTERNAL naming it") {
  EnableServerPlugins();
  const std::string address = "unix:/nonexistent-latchkey-dir/grpc.sock";
  std::vector<int> ports;
  absl::StatusOr<std::unique_ptr<grpc::Server>> server = Listen(ListenOptions({address}), ports);
  REQUIRE(absl::IsInternal(server.status()));
  REQUIRE_THAT(std::string(server.status().message()), Catch::Contains(address));
}

TEST_CASE("a port another server holds is INTERNAL, not shared with it") {
  // gRPC binds with SO_REUSEPORT unless told not to: a second authority or
  // sidecar started on a port in use would start, and the kernel would split
  // new connections between the two processes.
  EnableServerPlugins();
  std::vector<int> first_ports;
  absl::StatusOr<std::unique_ptr<grpc::Server>> first =
      Listen(ListenOptions({"127.0.0.1:0"}), first_ports);
  REQUIRE(first.ok());

  const std::string taken = "127.0.0.1:" + std::to_string(first_ports[0]);
  std::vector<int> ports;
  absl::StatusOr<std::unique_ptr<grpc::Server>> second = Listen(ListenOptions({taken}), ports);
  CHECK(absl::IsInternal(second.status()));
  CHECK_THAT(std::string(second.status().message()), Catch::Contains(taken));
  if (second.ok()) (*second)->Shutdown();
  (*first)->Shutdown();
}

}  // namespace
}  // namespace latchkey
