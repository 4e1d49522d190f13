// GitHub secret scanning's partner endpoint (docs/design.md, "Leak response"):
// GitHub finds latchkey key values in public code and POSTs them here; each
// one latchkey issued is handed to KeyAuthority::ReportLeak.
//
// The contract is GitHub's: a JSON array of {token, type, url, source}, signed
// with ECDSA P-256 over SHA-256 of the raw body (base64 DER in the
// Github-Public-Key-Signature header) by the key Github-Public-Key-Identifier
// names, among those GitHub publishes (the --github-keys-file). The answer is
// a JSON array of {token_hash, token_type, label}, label true_positive for a
// value latchkey issued, false_positive for any other. A request that is not
// signed by a known key, or not a well-formed report, changes nothing.
#ifndef LATCHKEY_AUTHORITY_RPC_SECRET_SCANNING_H_
#define LATCHKEY_AUTHORITY_RPC_SECRET_SCANNING_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "authority/core/key_authority.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "common/tls.h"
#include "common/work_queue.h"

namespace httplib {
class Server;
}

namespace latchkey {

// The public keys GitHub signs reports with, from a file in the shape GitHub
// publishes them (https://api.github.com/meta/public_keys/secret_scanning):
// {"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}. The file
// is read again when it changes; a changed file that cannot be used keeps the
// keys read before (and says so in the log). Safe for concurrent use.
class GitHubKeys {
 public:
  // Reads `path`; INVALID_ARGUMENT when it holds no usable P-256 key.
  static absl::StatusOr<std::unique_ptr<GitHubKeys>> Load(std::string path);
  ~GitHubKeys();

  // OK when `signature` (base64 of a DER ECDSA signature) signs `body` with
  // the key `key_id` names; UNAUTHENTICATED (saying which check failed, never
  // the body) otherwise.
  absl::Status Verify(std::string_view key_id, std::string_view signature, std::string_view body)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Key;
  struct FileId {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    int64_t modified_nanos = 0;
    bool operator==(const FileId&) const = default;
  };
  using KeyMap = absl::flat_hash_map<std::string, std::shared_ptr<const Key>>;

  explicit GitHubKeys(std::string path) : path_(std::move(path)) {}
  // What tells one version of the file from the next (all zero: no file).
  static FileId Identify(const std::string& path);
  // The keys in the file as it is now.
  static absl::StatusOr<KeyMap> Read(const std::string& path);
  // Reads the file again when it is not the one read last.
  void Refresh() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  Mutex mu_;
  FileId file_ ABSL_GUARDED_BY(mu_);
  KeyMap keys_ ABSL_GUARDED_BY(mu_);
};

// One token of a report.
struct ReportedToken {
  std::string token;
  std::string type;
  std::string url;
  std::string source;
};

// The tokens of a report body; INVALID_ARGUMENT for anything but a JSON array
// of objects with a string `token` (at most 1,024 characters) and optional
// string `type`, `url` and `source` (printable, at most 2,048 characters).
absl::StatusOr<std::vector<ReportedToken>> ParseReport(std::string_view body);

struct SecretScanningOptions {
  std::string listen;            // host:port (--leak-report-listen)
  std::string github_keys_file;  // --github-keys-file
  // Certificate and key: HTTPS. Without them plain HTTP, refused beyond
  // loopback unless allow_insecure_remote (behind a TLS-terminating ingress).
  ServerTlsFiles tls;
  bool allow_insecure_remote = false;
  size_t max_body_bytes = 4 << 20;
};

class SecretScanningServer {
 public:
  // `authority`, `work` (where each token's mutation runs) and `metrics`
  // must outlive the server.
  static absl::StatusOr<std::unique_ptr<SecretScanningServer>> Start(
      const SecretScanningOptions& options, KeyAuthority* authority, WorkQueue* work,
      Registry* metrics);
  ~SecretScanningServer();  // stops serving, after the requests in flight

  int port() const { return port_; }

 private:
  SecretScanningServer() = default;
  void Route();

  KeyAuthority* authority_ = nullptr;
  WorkQueue* work_ = nullptr;
  std::unique_ptr<GitHubKeys> keys_;
  Registry::Family<Counter>* requests_ = nullptr;  // by HTTP status
  Counter* true_positives_ = nullptr;
  Counter* false_positives_ = nullptr;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_RPC_SECRET_SCANNING_H_
