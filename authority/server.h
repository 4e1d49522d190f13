// latchkey-authority as one object: store, lifecycle core, event hub and the
// gRPC server, started together and stopped together. main() and the
// in-process tests both use it.
#ifndef LATCHKEY_AUTHORITY_SERVER_H_
#define LATCHKEY_AUTHORITY_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "authority/core/key_authority.h"
#include "authority/options.h"
#include "authority/store/key_store.h"

namespace latchkey {

class AuthorityServer {
 public:
  // Opens (or creates) the data dir, bootstraps the admin token on first
  // start, and serves. Returns once the server is listening.
  static absl::StatusOr<std::unique_ptr<AuthorityServer>> Start(const AuthorityOptions& options);
  ~AuthorityServer();  // Shutdown()

  // Stops accepting calls, ends watch streams, waits for calls in flight
  // (at most `deadline`), then closes the store. Idempotent.
  void Shutdown(absl::Duration deadline = absl::Seconds(5));

  // The bound TCP port of listen address `i` (resolves port 0).
  int port(size_t i = 0) const { return ports_.at(i); }
  std::string address(size_t i = 0) const;
  std::string admin_token_path() const;
  KeyAuthority& authority() { return *authority_; }
  // The store it serves from (tests and benches read its stats).
  KeyStore& store();
  // The bound port of the metrics server, 0 when it is off.
  int metrics_port() const;
  // The bound port of the secret scanning endpoint, 0 when it is off.
  int leak_report_port() const;

 private:
  struct Parts;
  explicit AuthorityServer(std::unique_ptr<Parts> parts);

  std::unique_ptr<Parts> parts_;
  KeyAuthority* authority_ = nullptr;
  std::vector<int> ports_;
  std::string admin_token_path_;
  bool shut_down_ = false;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_SERVER_H_
