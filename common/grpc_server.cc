#include "common/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <sys/stat.h>

#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_client.h"
#include "common/net.h"
#include "common/strings.h"

namespace latchkey {

void EnableServerPlugins() {
  // Debian's Abseil is built with absl::Mutex deadlock detection on, which
  // gRPC's own locks pay for on every call (GraphCycles in profiles); release
  // builds of Abseil have it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  KeepCallbackThreads();  // before the plugins, which it does not need
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
}

absl::Status AddListeners(grpc::ServerBuilder& builder, const ListenOptions& options,
                          std::vector<int>& ports) {
  if (options.addresses.empty()) return absl::InvalidArgumentError("no --listen address");
  ports.assign(options.addresses.size(), 0);
  for (size_t i = 0; i < options.addresses.size(); ++i) {
    const std::string& address = options.addresses[i];
    const bool tls = options.tls != nullptr && !IsUnixAddress(address);
    if (!tls && !IsLocalAddress(address) && !options.allow_insecure_remote) {
      return absl::InvalidArgumentError(
          StrCat("refusing to listen on ", address,
                 " without TLS; use a loopback address or pass --allow-insecure-remote"));
    }
    builder.AddListeningPort(address, tls ? options.tls : grpc::InsecureServerCredentials(),
                             IsUnixAddress(address) ? nullptr : &ports[i]);
  }
  // A port another process holds is an error, as for any server: gRPC's
  // default, SO_REUSEPORT, would start a second authority or sidecar on it
  // and let the kernel split new connections between the two.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, options.max_connection_idle_ms);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, options.max_connection_age_ms);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                             options.max_connection_age_grace_ms);
  // Keepalive enforcement: a client pinging more often than every 10 s
  // without data gets strikes, and after 2 its connection is closed
  // (GOAWAY ENHANCE_YOUR_CALM), so pings cannot be used to burn CPU.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  // Our own keepalive finds dead peers (a sidecar host gone without a FIN).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(grpc::ServerBuilder& builder,
                                                          const ListenOptions& options,
                                                          const std::vector<int>& ports) {
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    return absl::InternalError(StrCat("cannot listen on ", absl::StrJoin(options.addresses, ", ")));
  }
  for (size_t i = 0; i < ports.size(); ++i) {
    const std::string& address = options.addresses[i];
    if (IsUnixAddress(address)) {
      // Owner and group only: the pod's containers share a group, nobody else.
      const std::string path = address.substr(address.starts_with("unix://") ? 7 : 5);
      if (::chmod(path.c_str(), 0660) != 0) {
        server->Shutdown();
        return absl::InternalError(StrCat("cannot chmod 0660 ", path));
      }
    } else if (ports[i] == 0) {
      server->Shutdown();
      return absl::InternalError(StrCat("cannot listen on ", address));
    }
  }
  return server;
}

}  // namespace latchkey
