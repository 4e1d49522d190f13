// Status conversion at the gRPC edge, and unshared copies.
#include "common/status.h"

#include <catch2/catch.hpp>

namespace latchkey {
namespace {

TEST_CASE("a status crosses the gRPC edge with its code and message, both ways") {
  const absl::StatusCode code =
      GENERATE(absl::StatusCode::kNotFound, absl::StatusCode::kPermissionDenied,
               absl::StatusCode::kResourceExhausted, absl::StatusCode::kUnavailable);
  const absl::Status inside(code, "key_0123456789abcdef not found");
  const grpc::Status edge = ToGrpcStatus(inside);
  CHECK(static_cast<int>(edge.error_code()) == static_cast<int>(code));
  CHECK(edge.error_message() == "key_0123456789abcdef not found");
  CHECK(FromGrpcStatus(edge) == inside);
  CHECK(ToGrpcStatus(absl::OkStatus()).ok());
  CHECK(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST_CASE("status code names are the canonical upper-case names") {
  CHECK(std::string(StatusCodeName(grpc::StatusCode::OK)) == "OK");
  CHECK(std::string(StatusCodeName(grpc::StatusCode::NOT_FOUND)) == "NOT_FOUND");
  CHECK(std::string(StatusCodeName(grpc::StatusCode::UNAUTHENTICATED)) == "UNAUTHENTICATED");
}

TEST_CASE("an unshared copy equals the status but shares no representation with it") {
  const absl::Status original = absl::UnavailableError("authority shutting down");
  const absl::Status shared = original;  // a plain copy shares the message's storage
  REQUIRE(shared.message().data() == original.message().data());

  const absl::Status copy = Unshared(original);
  CHECK(copy == original);
  CHECK(copy.message().data() != original.message().data());
  CHECK(Unshared(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace latchkey
