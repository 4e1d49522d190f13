// The console's JSON API: each KeyAdmin method is one route, its request and
// response in protobuf's JSON mapping (lowerCamelCase names, enums by name,
// as `latchkeyctl -o json` prints them), and the caller's own bearer token
// passed on to the authority. The gateway holds no token and decides nothing:
// every permission check stays in the authority.
//
// An AdminGateway is safe for concurrent access from multiple threads without
// any external synchronization.
#ifndef LATCHKEY_CONSOLE_ADMIN_GATEWAY_H_
#define LATCHKEY_CONSOLE_ADMIN_GATEWAY_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "latchkey/v1/key_admin.grpc.pb.h"

namespace latchkey::console {

// What an HTTP handler sends back: a status code and a JSON body. Errors are
// {"code": "NOT_FOUND", "message": "..."}, with the authority's message.
struct JsonReply {
  int http_status = 200;
  std::string body;
};

// The HTTP status for a gRPC code (the mapping grpc-gateway uses).
int HttpStatusFor(grpc::StatusCode code);

class AdminGateway {
 public:
  // Calls go to `channel` and give up after `deadline`.
  explicit AdminGateway(std::shared_ptr<grpc::Channel> channel,
                        absl::Duration deadline = absl::Seconds(10));

  // Runs KeyAdmin method `method` ("ListKeys") with the JSON request `body`
  // (empty means {}). `authorization` is the HTTP Authorization header,
  // "Bearer <token>"; without a well-formed one the call is UNAUTHENTICATED
  // and never reaches the authority. An unknown method is NOT_FOUND.
  JsonReply Call(std::string_view method, std::string_view authorization,
                 std::string_view body) const;

 private:
  using Handler =
      std::function<grpc::Status(grpc::ClientContext*, std::string_view in, std::string* out)>;

  template <typename Req, typename Resp>
  void Add(std::string name,
           grpc::Status (v1::KeyAdmin::Stub::*method)(grpc::ClientContext*, const Req&, Resp*));

  // Constant after construction.
  const std::unique_ptr<v1::KeyAdmin::Stub> stub_;
  const absl::Duration deadline_;
  absl::flat_hash_map<std::string, Handler> methods_;
};

}  // namespace latchkey::console

#endif  // LATCHKEY_CONSOLE_ADMIN_GATEWAY_H_
