// TLS for the authority's listeners and for clients that reach it.
//
// Files are PEM. A server with a client CA requires and verifies client
// certificates (mTLS); bearer tokens are still required on every call.
#ifndef LATCHKEY_COMMON_TLS_H_
#define LATCHKEY_COMMON_TLS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace latchkey {

struct ServerTlsFiles {
  std::string cert;       // --tls-cert
  std::string key;        // --tls-key
  std::string client_ca;  // --tls-client-ca: when set, clients must present a cert it signed
  bool enabled() const { return !cert.empty() || !key.empty() || !client_ca.empty(); }
};

struct ClientTlsFiles {
  std::string ca;    // --authority-ca: verify the authority against this CA
  std::string cert;  // --tls-cert: our certificate, for mTLS
  std::string key;   // --tls-key
  bool enabled() const { return !ca.empty() || !cert.empty() || !key.empty(); }
};

// INVALID_ARGUMENT when cert and key are not given together, NOT_FOUND or
// INTERNAL when a file cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const ServerTlsFiles& files);

// Insecure when no file is given.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const ClientTlsFiles& files);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_TLS_H_
