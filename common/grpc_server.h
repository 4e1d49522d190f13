// What every latchkey gRPC server shares: listeners, health, reflection and
// resource limits.
#ifndef LATCHKEY_COMMON_GRPC_SERVER_H_
#define LATCHKEY_COMMON_GRPC_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace latchkey {

struct ListenOptions {
  explicit ListenOptions(std::vector<std::string> default_addresses = {})
      : addresses(std::move(default_addresses)) {}

  std::vector<std::string> addresses;  // "host:port" or "unix:/path"
  bool allow_insecure_remote = false;
  int max_receive_message_bytes = 4 << 20;
  int max_concurrent_streams = 1000;  // per connection; more wait for a slot
  // Connections idle this long are closed (watch streams keep theirs busy).
  int max_connection_idle_ms = 5 * 60 * 1000;
  // The cap on any call's duration: a connection this old is told to go
  // away, and calls still open after the grace are cancelled. A sidecar's
  // watch stream then resumes on a new connection by replay.
  int max_connection_age_ms = 60 * 60 * 1000;
  int max_connection_age_grace_ms = 5 * 60 * 1000;
  // TLS for TCP listeners; unix sockets stay plaintext (local by nature).
  std::shared_ptr<grpc::ServerCredentials> tls;
};

// Turns on health checking and reflection (and turns off absl::Mutex
// deadlock detection); must run before the first ServerBuilder is made.
void EnableServerPlugins();

// Adds every address to `builder`: TCP with options.tls when set, else
// plaintext HTTP/2. A plaintext address beyond loopback is refused
// (INVALID_ARGUMENT) unless allow_insecure_remote. `ports[i]` receives the port bound for
// addresses[i] once the server starts (0 for unix sockets).
absl::Status AddListeners(grpc::ServerBuilder& builder, const ListenOptions& options,
                          std::vector<int>& ports);

// Builds and starts; INTERNAL naming the addresses when a port cannot be bound.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(grpc::ServerBuilder& builder,
                                                          const ListenOptions& options,
                                                          const std::vector<int>& ports);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_GRPC_SERVER_H_
