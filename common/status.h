// Status conversion at the gRPC edge. Inside, code uses absl::Status; services
// convert once, here, on the way out (and clients on the way in).
#ifndef LATCHKEY_COMMON_STATUS_H_
#define LATCHKEY_COMMON_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace latchkey {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// A copy of `status` (its code and message; payloads are dropped) that shares
// nothing with it. Copies of an absl::Status share one reference-counted
// representation, and Debian's Abseil releases it in code ThreadSanitizer does
// not see: a status that goes to another thread and may outlive its sender is
// copied this way, so the last release never races a copy it cannot see.
absl::Status Unshared(const absl::Status& status);

// "NOT_FOUND" and so on, for metrics labels and one-line errors.
const char* StatusCodeName(grpc::StatusCode code);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_STATUS_H_
