// latchkeyctl's commands: one method per subcommand, each returning the
// process exit code (0 ok, 1 the RPC failed, 2 bad usage, 3 --wait timed out,
// 4 validate's verdict was not VALID).
#ifndef LATCHKEY_CLI_CTL_H_
#define LATCHKEY_CLI_CTL_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "cli/output.h"
#include "common/tls.h"
#include "latchkey/v1/key_admin.grpc.pb.h"

namespace latchkey::cli {

struct Globals {
  std::string authority = "127.0.0.1:7700";
  std::string token;  // LATCHKEY_TOKEN, else read from token_file
  std::string token_file = "./latchkey-data/admin.token";
  bool token_file_given = false;  // --token-file or LATCHKEY_TOKEN_FILE
  // Where `latchkeyctl login` keeps its sign-in (cli/login.h).
  std::string credentials_path;
  Format format = Format::kTable;
  ClientTlsFiles tls;  // how to reach the authority over TLS
};

struct KeyOptions {
  std::string name;
  std::string expire_in;  // e.g. "720h" or "30d"
  std::string expire_at;  // RFC 3339
};

class Ctl {
 public:
  Ctl(Globals globals, std::ostream& out = std::cout, std::ostream& err = std::cerr);

  int ProjectCreate(const std::string& name);
  int ProjectList();
  int ProjectGet(const std::string& project_id);
  int ProjectSetAccess(const std::string& project_id, bool enabled);
  // `policy` is "notify" or "revoke".
  int ProjectSetLeakPolicy(const std::string& project_id, const std::string& policy);

  int KeyGenerate(const std::string& project_id, const KeyOptions& options);
  // `unused` set ("30d"): only active keys not used within it.
  int KeyList(const std::string& project_id, const std::string& unused = "");
  int KeyGet(const std::string& key_id);
  int KeyValue(const std::string& key_id);
  // `wait` set: then waits up to it for every connected sidecar to apply the
  // revocation, and prints the receipt.
  int KeyRevoke(const std::string& key_id, std::optional<absl::Duration> wait);
  int KeyRotate(const std::string& key_id, const std::string& grace);
  // A leak response: the key `in` (or `value_file`, when set) holds the value
  // of; never from the command line, where it would land in shell history.
  // `revoke` revokes an API key in the same step and prints the receipt.
  int KeyFind(std::istream& in, const std::string& value_file, bool revoke, absl::Duration wait);

  int SecretGenerate(const std::string& project_id, const KeyOptions& options);
  // `confirm` empty: asks for DELETE at a terminal, refuses without one.
  int SecretDelete(const std::string& key_id, const std::string& confirm);

  int Audit(const std::string& project_id);
  // Prints new audit events as they are committed, every `interval`, until
  // `stop` returns true (never, from the command line); JSON lines with -o
  // json. A dropped connection is retried from the last revision printed.
  int AuditFollow(const std::string& project_id, absl::Duration interval,
                  const std::function<bool()>& stop);
  int PrincipalCreate(const std::string& name, const std::string& role);
  int PrincipalList();
  int PrincipalDelete(const std::string& principal_id);
  int WhoAmI();
  // Role bindings (ADMIN): exactly one of the subject's fields is set.
  struct RoleSubject {
    std::string principal, user, group;
  };
  int RoleBind(const RoleSubject& who, const std::string& role, const std::string& project_id);
  int RoleList(const std::string& project_id);
  int RoleUnbind(const std::string& binding_id);
  // latchkeyctl login: `issuer` and `client_id` empty: the last login's.
  // Prints the URL to visit, and opens a browser unless `no_browser`.
  int Login(std::string issuer, std::string client_id, const std::string& ca_file, bool no_browser);
  int Logout();
  // Webhooks (ADMIN). `events` is comma-separated; `format` json or slack.
  int WebhookCreate(const std::string& url, const std::string& events,
                    const std::string& project_id, const std::string& format);
  int WebhookList();
  int WebhookDelete(const std::string& webhook_id);
  int WebhookDeliveries(const std::string& webhook_id);
  // Exit 0 when the receiver answered the ping with 2xx, 1 otherwise.
  int WebhookTest(const std::string& webhook_id);
  int Propagation(uint64_t revision);

  int Validate(const std::string& key, const std::string& sidecar);
  // Exit 0 when `address` (host:port or unix:/path) reports SERVING. TLS
  // applies to TCP addresses only.
  int Health(const std::string& address);

 private:
  // Reports a failed RPC in one line and returns 1.
  int Fail(const std::string& what, const grpc::Status& status);
  std::unique_ptr<grpc::ClientContext> Context() const;
  // Every page of a List call, merged into `all`.
  template <typename Req, typename Resp>
  grpc::Status ListAll(grpc::Status (v1::KeyAdmin::Stub::*method)(grpc::ClientContext*, const Req&,
                                                                  Resp*),
                       Req req, Resp* all);
  // Use and rejection counts; for a revoked key, who still sends it.
  void PrintTraffic(const v1::Key& key);
  // Polls GetPropagation until every connected sidecar applied `revision`.
  // `what` names the change in the receipt line ("revoked").
  int WaitForPropagation(uint64_t revision, absl::Duration timeout, const std::string& what);

  Globals globals_;
  // Where the token came from, for whoami: "LATCHKEY_TOKEN", a file's path,
  // or "latchkeyctl login (<path>)".
  std::string credential_source_;
  std::ostream& out_;
  std::ostream& err_;
  std::unique_ptr<v1::KeyAdmin::Stub> admin_;
};

}  // namespace latchkey::cli

#endif  // LATCHKEY_CLI_CTL_H_
