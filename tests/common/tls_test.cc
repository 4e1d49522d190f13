// TLS credentials from PEM files, on their own: which flags go together, and
// errors that name the flag and file at fault.
#include "common/tls.h"

#include <catch2/catch.hpp>

#include "common/files.h"
#include "tests/testing/certs.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

struct Files {
  testing::TempDir dir;
  std::string ca, cert, key, empty;
  Files() {
    const testing::Pem authority = testing::SelfSigned("latchkey test CA", true);
    const testing::Pem leaf = testing::Issue(authority, "authority");
    ca = dir / "ca.pem";
    cert = dir / "cert.pem";
    key = dir / "key.pem";
    empty = dir / "empty.pem";
    REQUIRE(WritePrivateFile(ca, authority.cert).ok());
    REQUIRE(WritePrivateFile(cert, leaf.cert).ok());
    REQUIRE(WritePrivateFile(key, leaf.key).ok());
    REQUIRE(WritePrivateFile(empty, "").ok());
  }
};

bool Names(const absl::Status& s, const std::string& text) {
  return s.message().find(text) != std::string_view::npos;
}

TEST_CASE("server TLS needs cert and key together, and each file must be there") {
  Files f;
  REQUIRE(ServerCredentials({f.cert, f.key, ""}).ok());
  REQUIRE(ServerCredentials({f.cert, f.key, f.ca}).ok());  // mTLS
  REQUIRE(absl::IsInvalidArgument(ServerCredentials({f.cert, "", ""}).status()));
  REQUIRE(absl::IsInvalidArgument(ServerCredentials({"", f.key, f.ca}).status()));

  absl::Status missing = ServerCredentials({f.dir / "nope.pem", f.key, ""}).status();
  REQUIRE(absl::IsNotFound(missing));
  REQUIRE(Names(missing, "--tls-cert"));
  REQUIRE(Names(missing, "nope.pem"));
  absl::Status empty_key = ServerCredentials({f.cert, f.empty, ""}).status();
  REQUIRE(absl::IsNotFound(empty_key));
  REQUIRE(Names(empty_key, "--tls-key"));
  REQUIRE(Names(ServerCredentials({f.cert, f.key, f.empty}).status(), "--tls-client-ca"));
}

TEST_CASE("client TLS: none is plaintext, a client cert needs its key, files must be there") {
  Files f;
  REQUIRE(*ChannelCredentials({}) != nullptr);  // insecure, for loopback
  REQUIRE(ChannelCredentials({f.ca, "", ""}).ok());
  REQUIRE(ChannelCredentials({f.ca, f.cert, f.key}).ok());
  REQUIRE(absl::IsInvalidArgument(ChannelCredentials({f.ca, f.cert, ""}).status()));
  REQUIRE(absl::IsInvalidArgument(ChannelCredentials({f.ca, "", f.key}).status()));
  absl::Status missing = ChannelCredentials({f.dir / "nope.pem", "", ""}).status();
  REQUIRE(absl::IsNotFound(missing));
  REQUIRE(Names(missing, "--authority-ca"));
}

}  // namespace
}  // namespace latchkey
