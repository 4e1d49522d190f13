// latchkey::edge: key validation inside a C++ ingestion service, no socket.
//
// An edge::Validator follows a latchkey authority exactly as latchkey-sidecar
// does (the same code: the watch stream of revisions, the staleness policy,
// usage reports, and acknowledgements, so revocation receipts count this
// process like a sidecar) and answers Validate() from memory with a function
// call: a SHA-256 and one table lookup, no lock.
//
//   latchkey::edge::Options options;
//   options.authority = "latchkey-authority:7700";
//   options.token = token;  // a SIDECAR principal's token
//   auto validator = latchkey::edge::Validator::Start(options);
//   if (!validator.ok()) return Fail(validator.status());
//   (*validator)->WaitUntilFresh(absl::Seconds(10));
//   latchkey::edge::Result r = (*validator)->Validate(api_key);
//   if (r.verdict == latchkey::edge::Verdict::kValid) Route(r.project_id(), event);
//
// Link the CMake target latchkey::edge. A Validator is safe for concurrent
// access from multiple threads without any external synchronization; make one
// per process.
#ifndef LATCHKEY_EDGE_H_
#define LATCHKEY_EDGE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace latchkey {
class Follower;

namespace edge {

struct Options {
  // The authority's gRPC address, host:port.
  std::string authority = "127.0.0.1:7700";
  // A SIDECAR principal's token (latchkeyctl principal create NAME --role SIDECAR).
  std::string token;
  // The name revocation receipts list for this process; empty: hostname-pid.
  std::string client_id;
  // TLS to the authority: a PEM CA file enables it; a certificate and key add
  // a client certificate. Empty: plaintext (loopback and tests only).
  std::string tls_ca_file, tls_cert_file, tls_key_file;
  // Past this without the authority confirming our revision, fresh() is
  // false, and with reject_when_stale every well-formed key is kUnknown.
  absl::Duration max_staleness = absl::Seconds(30);
  bool reject_when_stale = false;
  // How often usage (last used, counts) is reported to the authority.
  absl::Duration usage_interval = absl::Seconds(10);
  // Where to keep the key set across restarts (digests, never keys); empty:
  // nowhere, and a restart syncs from the authority before it knows a key.
  std::string state_file;
};

enum class Verdict {
  kValid,
  kRevoked,
  kExpired,
  kProjectDisabled,
  kUnknown,    // well formed, but not a key of this authority
  kMalformed,  // not a key at all (prefix, length, alphabet or checksum)
};

class Result {
 public:
  Verdict verdict = Verdict::kUnknown;
  bool secret_key = false;  // the key is a secret key (lks_), not an API key
  // "key_…" and "prj_…" for a key the authority made; empty otherwise. The
  // views live as long as this Result.
  std::string_view key_id() const { return {key_id_.data(), has_ids_ ? key_id_.size() : 0}; }
  std::string_view project_id() const {
    return {project_id_.data(), has_ids_ ? project_id_.size() : 0};
  }

 private:
  friend class Validator;
  std::array<char, 20> key_id_{};
  std::array<char, 16> project_id_{};
  bool has_ids_ = false;
};

class Validator {
 public:
  // Starts following `options.authority` in the background. INVALID_ARGUMENT
  // without a token or for unreadable TLS files; an unreachable authority is
  // not an error (it is retried, and fresh() stays false).
  static absl::StatusOr<std::unique_ptr<Validator>> Start(Options options);
  // Reports the last usage, tells the authority this process leaves, stops.
  ~Validator();
  Validator(const Validator&) = delete;
  Validator& operator=(const Validator&) = delete;

  // The verdict for `key` now, counted in the next usage report.
  Result Validate(std::string_view key) const;

  // Synced, and the authority confirmed our revision within max_staleness.
  bool fresh() const;
  // Waits up to `timeout` for fresh(); returns it.
  bool WaitUntilFresh(absl::Duration timeout) const;
  // The last revision of the authority's log applied here (0 before the
  // first sync).
  uint64_t applied_revision() const;

 private:
  explicit Validator(std::unique_ptr<Follower> follower);
  std::unique_ptr<Follower> follower_;
};

}  // namespace edge
}  // namespace latchkey

#endif  // LATCHKEY_EDGE_H_
