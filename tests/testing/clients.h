// gRPC client helpers for tests that talk to real servers.
#ifndef LATCHKEY_TESTS_TESTING_CLIENTS_H_
#define LATCHKEY_TESTS_TESTING_CLIENTS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "latchkey/v1/key_admin.grpc.pb.h"
#include "tests/testing/testing.h"

namespace latchkey::testing {

inline std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

// "SERVING", "NOT_SERVING", or the RPC error, for the server's overall health.
inline std::string Health(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, {}, &resp);
  if (!s.ok()) return "error " + std::to_string(s.error_code());
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
}

// What an admin helper throws when its call fails: the call, the status
// code and the message (which can be empty).
inline std::runtime_error Failed(const std::string& call, const grpc::Status& s) {
  return std::runtime_error(call + ": code " + std::to_string(s.error_code()) + ": " +
                            s.error_message());
}

// An admin client: a KeyAdmin stub plus the token it sends.
struct Admin {
  std::unique_ptr<v1::KeyAdmin::Stub> stub;
  std::string token;

  Admin(const std::string& address, std::string bearer)
      : stub(v1::KeyAdmin::NewStub(Channel(address))), token(std::move(bearer)) {}

  template <typename Req, typename Resp>
  grpc::Status Call(grpc::Status (v1::KeyAdmin::Stub::*method)(grpc::ClientContext*, const Req&,
                                                               Resp*),
                    const Req& req, Resp* resp) {
    return ((*stub).*method)(AuthContext(token).get(), req, resp);
  }

  v1::CreateProjectResponse CreateProject(const std::string& name) {
    v1::CreateProjectRequest req;
    req.set_name(name);
    v1::CreateProjectResponse resp;
    grpc::Status s = Call(&v1::KeyAdmin::Stub::CreateProject, req, &resp);
    if (!s.ok()) throw Failed("CreateProject", s);
    return resp;
  }

  v1::GenerateApiKeyResponse GenerateApiKey(const std::string& project_id,
                                            const std::string& name = "ingest") {
    v1::GenerateApiKeyRequest req;
    req.set_project_id(project_id);
    req.set_name(name);
    v1::GenerateApiKeyResponse resp;
    grpc::Status s = Call(&v1::KeyAdmin::Stub::GenerateApiKey, req, &resp);
    if (!s.ok()) throw Failed("GenerateApiKey", s);
    return resp;
  }

  v1::GenerateSecretKeyResponse GenerateSecretKey(const std::string& project_id) {
    v1::GenerateSecretKeyRequest req;
    req.set_project_id(project_id);
    req.set_name("backend");
    v1::GenerateSecretKeyResponse resp;
    grpc::Status s = Call(&v1::KeyAdmin::Stub::GenerateSecretKey, req, &resp);
    if (!s.ok()) throw Failed("GenerateSecretKey", s);
    return resp;
  }

  grpc::Status Revoke(const std::string& key_id, v1::Key* out = nullptr) {
    v1::RevokeApiKeyRequest req;
    req.set_key_id(key_id);
    v1::Key resp;
    grpc::Status s = Call(&v1::KeyAdmin::Stub::RevokeApiKey, req, &resp);
    if (out) *out = resp;
    return s;
  }

  // The new principal's token.
  std::string CreatePrincipal(const std::string& name, v1::Role role) {
    return NewPrincipal(name, role).token();
  }
  v1::CreatePrincipalResponse NewPrincipal(const std::string& name, v1::Role role) {
    v1::CreatePrincipalRequest req;
    req.set_name(name);
    req.set_role(role);
    v1::CreatePrincipalResponse resp;
    grpc::Status s = Call(&v1::KeyAdmin::Stub::CreatePrincipal, req, &resp);
    if (!s.ok()) throw Failed("CreatePrincipal", s);
    return resp;
  }
  v1::GetPropagationResponse Receipt(uint64_t revision) {
    v1::GetPropagationRequest req;
    req.set_revision(revision);
    v1::GetPropagationResponse resp;
    grpc::Status s = Call(&v1::KeyAdmin::Stub::GetPropagation, req, &resp);
    if (!s.ok()) throw Failed("GetPropagation", s);
    return resp;
  }
  grpc::Status DeletePrincipal(const std::string& principal_id) {
    v1::DeletePrincipalRequest req;
    req.set_principal_id(principal_id);
    v1::DeletePrincipalResponse resp;
    return Call(&v1::KeyAdmin::Stub::DeletePrincipal, req, &resp);
  }
};

// Every audit revision of the store, sorted: the principals' and each
// project's. After any sequence of mutations it must be exactly 1..head.
inline std::vector<uint64_t> AllAuditRevisions(Admin& admin) {
  std::vector<std::string> scopes = {""};
  v1::ListProjectsRequest lp;
  lp.set_page_size(1000);
  for (;;) {
    v1::ListProjectsResponse page;
    if (!admin.Call(&v1::KeyAdmin::Stub::ListProjects, lp, &page).ok()) return {};
    for (const v1::Project& p : page.projects()) scopes.push_back(p.project_id());
    if (page.next_page_token().empty()) break;
    lp.set_page_token(page.next_page_token());
  }
  std::vector<uint64_t> revisions;
  for (const std::string& scope : scopes) {
    v1::ListAuditEventsRequest req;
    req.set_project_id(scope);
    req.set_page_size(1000);
    for (;;) {
      v1::ListAuditEventsResponse page;
      if (!admin.Call(&v1::KeyAdmin::Stub::ListAuditEvents, req, &page).ok()) return {};
      for (const v1::AuditEvent& e : page.events()) revisions.push_back(e.revision());
      if (page.next_page_token().empty()) break;
      req.set_page_token(page.next_page_token());
    }
  }
  std::sort(revisions.begin(), revisions.end());
  return revisions;
}

// The token in a token file, without its newline.
inline std::string TokenFrom(const std::string& path) {
  std::string token = ReadFile(path);
  while (!token.empty() && (token.back() == '\n' || token.back() == ' ')) token.pop_back();
  return token;
}

// A latchkey-authority process on loopback `port` with its embedded store
// in `dir`/data and its log in `dir`/authority-<run>.log, plus `flags`;
// returns once it serves.
inline std::unique_ptr<Subprocess> StartAuthorityProcess(
    const TempDir& dir, int port, int run, const std::vector<std::string>& flags = {}) {
  std::vector<std::string> argv = {Binary("latchkey-authority"),
                                   "--listen",
                                   "127.0.0.1:" + std::to_string(port),
                                   "--data-dir",
                                   dir / "data",
                                   "--metrics-listen",
                                   "127.0.0.1:0"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  auto p = std::make_unique<Subprocess>(argv, dir / ("authority-" + std::to_string(run) + ".log"));
  if (!p->WaitForLog("serving on", std::chrono::seconds(20))) {
    throw std::runtime_error("latchkey-authority did not start: " + p->Log());
  }
  return p;
}

}  // namespace latchkey::testing

#endif  // LATCHKEY_TESTS_TESTING_CLIENTS_H_
