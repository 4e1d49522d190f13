#include "cli/ctl.h"

#include <fmt/format.h>
#include <spawn.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cli/login.h"
#include "common/files.h"
#include "common/key_format.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "latchkey/v1/validator.grpc.pb.h"

namespace latchkey::cli {
namespace {

// Fills `expire` from --expires-in / --expires-at; false on bad input.
bool ExpireTime(const KeyOptions& o, google::protobuf::Timestamp* expire, std::ostream& err) {
  if (!o.expire_in.empty()) {
    std::optional<absl::Duration> d = ParseDuration(o.expire_in);
    if (!d) {
      err << "error: --expires-in takes a duration such as 90m, 720h or 30d\n";
      return false;
    }
    *expire = ToProto(absl::Now() + *d);
  } else if (!o.expire_at.empty()) {
    absl::Time t;
    std::string why;
    if (!absl::ParseTime(absl::RFC3339_full, o.expire_at, &t, &why)) {
      err << "error: --expires-at takes an RFC 3339 time such as 2027-01-31T00:00:00Z\n";
      return false;
    }
    *expire = ToProto(t);
  }
  return true;
}

// Errors a follower waits out (the authority restarting, a network blip), as
// opposed to ones that need a person (a bad token or project id).
bool Transient(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:  // a server shutting down cancels calls in flight
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNKNOWN:
      return true;
    default:
      return false;
  }
}

// A line from `in`; at a terminal, prompts on `err` and does not echo.
std::string ReadSecretLine(std::istream& in, std::ostream& err, const char* prompt) {
  const bool tty = &in == &std::cin && isatty(STDIN_FILENO);
  termios saved{};
  if (tty) {
    err << prompt << std::flush;
    tcgetattr(STDIN_FILENO, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~ECHO;
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  std::getline(in, line);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    err << "\n";
  }
  return line;
}

}  // namespace

template <typename Req, typename Resp>
grpc::Status Ctl::ListAll(grpc::Status (v1::KeyAdmin::Stub::*method)(grpc::ClientContext*,
                                                                     const Req&, Resp*),
                          Req req, Resp* all) {
  req.set_page_size(1000);
  do {
    Resp page;
    if (grpc::Status s = ((*admin_).*method)(Context().get(), req, &page); !s.ok()) return s;
    req.set_page_token(page.next_page_token());
    all->MergeFrom(page);  // appends the page's repeated field
  } while (!req.page_token().empty());
  all->clear_next_page_token();
  return grpc::Status::OK;
}

Ctl::Ctl(Globals globals, std::ostream& out, std::ostream& err)
    : globals_(std::move(globals)), out_(out), err_(err) {
  // LATCHKEY_TOKEN; else a token file named on purpose; else the sign-in of
  // `latchkeyctl login`; else the default token file.
  if (!globals_.token.empty()) credential_source_ = "LATCHKEY_TOKEN";
  if (globals_.token.empty() && !globals_.token_file_given && !globals_.credentials_path.empty()) {
    absl::StatusOr<std::string> id_token = CurrentIdToken(globals_.credentials_path);
    if (id_token.ok()) {
      globals_.token = *id_token;
      credential_source_ = "latchkeyctl login (" + globals_.credentials_path + ")";
    } else if (!absl::IsNotFound(id_token.status())) {
      err_ << "warning: " << id_token.status().message() << "\n";
    }
  }
  if (globals_.token.empty()) {
    absl::StatusOr<std::string> token = ReadTokenFile(globals_.token_file);
    if (token.ok()) {
      globals_.token = *token;
      credential_source_ = globals_.token_file;
    }
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      ChannelCredentials(globals_.tls);
  if (!creds.ok()) {
    err_ << "error: " << creds.status().message() << "\n";
    creds = grpc::InsecureChannelCredentials();  // calls then fail with a clear status
  }
  admin_ = v1::KeyAdmin::NewStub(grpc::CreateChannel(globals_.authority, *creds));
}

std::unique_ptr<grpc::ClientContext> Ctl::Context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!globals_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + globals_.token);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  return ctx;
}

int Ctl::Fail(const std::string& what, const grpc::Status& status) {
  err_ << "error: " << what << ": " << StatusCodeName(status.error_code()) << ": "
       << status.error_message() << "\n";
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED && globals_.token.empty()) {
    err_ << "hint: no token; run `latchkeyctl login`, or set LATCHKEY_TOKEN or --token-file "
            "(tried "
         << globals_.token_file << ")\n";
  }
  return 1;
}

int Ctl::ProjectCreate(const std::string& name) {
  v1::CreateProjectRequest req;
  req.set_name(name);
  v1::CreateProjectResponse resp;
  if (grpc::Status s = admin_->CreateProject(Context().get(), req, &resp); !s.ok()) {
    return Fail("create project", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, resp);
    return 0;
  }
  out_ << "Created project " << resp.project().project_id() << " (" << resp.project().name()
       << ").\nIts legacy API key " << resp.legacy_key().key_id() << ":\n\n  "
       << resp.legacy_api_key() << "\n\n";
  return 0;
}

int Ctl::ProjectList() {
  v1::ListProjectsResponse all;
  if (grpc::Status s = ListAll(&v1::KeyAdmin::Stub::ListProjects, v1::ListProjectsRequest(), &all);
      !s.ok()) {
    return Fail("list projects", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, all);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::Project& p : all.projects()) rows.push_back(ProjectRow(p));
  PrintTable(out_, ProjectHeader(), rows);
  return 0;
}

int Ctl::ProjectGet(const std::string& project_id) {
  v1::GetProjectRequest req;
  req.set_project_id(project_id);
  v1::Project p;
  if (grpc::Status s = admin_->GetProject(Context().get(), req, &p); !s.ok()) {
    return Fail("get project", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, p);
  } else {
    PrintTable(out_, ProjectHeader(), {ProjectRow(p)});
  }
  return 0;
}

int Ctl::ProjectSetAccess(const std::string& project_id, bool enabled) {
  v1::SetApiAccessRequest req;
  req.set_project_id(project_id);
  req.set_enabled(enabled);
  v1::Project p;
  if (grpc::Status s = admin_->SetApiAccess(Context().get(), req, &p); !s.ok()) {
    return Fail(enabled ? "enable API access" : "disable API access", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, p);
  } else {
    out_ << "API access for " << p.project_id() << " is " << (enabled ? "enabled" : "DISABLED")
         << (enabled ? ".\n" : ": every key of the project now fails validation.\n");
  }
  return 0;
}

int Ctl::ProjectSetLeakPolicy(const std::string& project_id, const std::string& policy) {
  v1::SetLeakPolicyRequest req;
  req.set_project_id(project_id);
  req.set_policy(policy == "revoke" ? v1::LEAK_POLICY_REVOKE : v1::LEAK_POLICY_NOTIFY);
  v1::Project p;
  if (grpc::Status s = admin_->SetLeakPolicy(Context().get(), req, &p); !s.ok()) {
    return Fail("set leak policy", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, p);
  } else if (req.policy() == v1::LEAK_POLICY_REVOKE) {
    out_ << "A value of " << p.project_id()
         << " reported leaked now stops at once: API keys are revoked, the legacy key rotated, "
            "secret keys deleted.\n";
  } else {
    out_ << "A value of " << p.project_id()
         << " reported leaked is now recorded on its key and in the audit log, and keeps "
            "working.\n";
  }
  return 0;
}

int Ctl::KeyGenerate(const std::string& project_id, const KeyOptions& options) {
  v1::GenerateApiKeyRequest req;
  req.set_project_id(project_id);
  req.set_name(options.name);
  if (!ExpireTime(options, req.mutable_expire_time(), err_)) return 2;
  v1::GenerateApiKeyResponse resp;
  if (grpc::Status s = admin_->GenerateApiKey(Context().get(), req, &resp); !s.ok()) {
    return Fail("generate API key", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, resp);
    return 0;
  }
  out_ << "Generated API key " << resp.key().key_id() << " (" << resp.key().name() << "):\n\n  "
       << resp.api_key() << "\n\n";
  return 0;
}

int Ctl::KeyList(const std::string& project_id, const std::string& unused) {
  v1::ListKeysRequest req;
  req.set_project_id(project_id);
  if (!unused.empty()) {
    std::optional<absl::Duration> d = ParseDuration(unused);
    if (!d || *d <= absl::ZeroDuration()) {
      err_ << "error: --unused takes a duration such as 30d, 720h or 90m\n";
      return 2;
    }
    *req.mutable_unused_for() = ToProto(*d);
  }
  v1::ListKeysResponse all;
  if (grpc::Status s = ListAll(&v1::KeyAdmin::Stub::ListKeys, req, &all); !s.ok()) {
    return Fail("list keys", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, all);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::Key& k : all.keys()) rows.push_back(KeyRow(k));
  PrintTable(out_, KeyHeader(), rows);
  return 0;
}

int Ctl::KeyGet(const std::string& key_id) {
  v1::GetKeyRequest req;
  req.set_key_id(key_id);
  v1::Key key;
  if (grpc::Status s = admin_->GetKey(Context().get(), req, &key); !s.ok()) {
    return Fail("get key", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, key);
  } else {
    PrintTable(out_, KeyHeader(), {KeyRow(key)});
    PrintTraffic(key);
  }
  return 0;
}

void Ctl::PrintTraffic(const v1::Key& key) {
  if (key.has_leaked_time()) {
    out_ << "LEAKED: reported " << FormatTime(key.leaked_time()) << " at " << key.leak_url()
         << "\n";
  }
  out_ << "use count: " << key.use_count() << "   rejected: " << key.rejected_count();
  if (key.rejected_count() > 0) out_ << " (last " << FormatTime(key.last_rejected_time()) << ")";
  out_ << "   revision: " << key.revision() << "\n";
  if (key.state() != v1::KEY_STATE_REVOKED) return;
  out_ << "rejected since the revocation: " << key.rejected_since_revocation() << "\n";
  if (key.top_rejecting_sidecars().empty()) return;
  out_ << "sidecars still receiving it:\n";
  std::vector<std::vector<std::string>> rows;
  for (const v1::SidecarRejections& s : key.top_rejecting_sidecars()) {
    rows.push_back({"  " + s.sidecar_id(), std::to_string(s.count()), FormatTime(s.last_time())});
  }
  PrintTable(out_, {"  SIDECAR", "REJECTED", "LAST"}, rows);
}

int Ctl::KeyValue(const std::string& key_id) {
  v1::GetApiKeyValueRequest req;
  req.set_key_id(key_id);
  v1::GetApiKeyValueResponse resp;
  if (grpc::Status s = admin_->GetApiKeyValue(Context().get(), req, &resp); !s.ok()) {
    return Fail("get API key value", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, resp);
  } else {
    out_ << resp.api_key() << "\n";
  }
  return 0;
}

int Ctl::KeyRevoke(const std::string& key_id, std::optional<absl::Duration> wait) {
  v1::RevokeApiKeyRequest req;
  req.set_key_id(key_id);
  v1::Key key;
  if (grpc::Status s = admin_->RevokeApiKey(Context().get(), req, &key); !s.ok()) {
    return Fail("revoke API key", s);
  }
  if (globals_.format == Format::kJson && !wait) {
    PrintJson(out_, key);
    return 0;
  }
  if (!wait) {
    out_ << "revoked " << key.key_id() << " (" << key.name() << ") at revision " << key.revision()
         << "\n";
    return 0;
  }
  return WaitForPropagation(key.revision(), *wait, "revoked");
}

int Ctl::KeyFind(std::istream& in, const std::string& value_file, bool revoke,
                 absl::Duration wait) {
  std::string value;
  if (!value_file.empty()) {
    absl::StatusOr<std::string> read = ReadTokenFile(value_file);
    if (!read.ok()) {
      err_ << "error: cannot read --value-file: " << read.status().message() << "\n";
      return 2;
    }
    value = *read;
  } else {
    value = ReadSecretLine(in, err_, "Paste the key value, then press Enter: ");
  }
  value = std::string(absl::StripAsciiWhitespace(value));
  if (value.empty()) {
    err_ << "error: no value: pipe it to standard input or give --value-file\n";
    return 2;
  }
  v1::FindKeyRequest req;
  req.set_value(value);
  v1::Key key;
  if (grpc::Status s = admin_->FindKey(Context().get(), req, &key); !s.ok()) {
    return Fail("find key", s);
  }
  if (globals_.format == Format::kJson && !revoke) {
    PrintJson(out_, key);
    return 0;
  }
  if (globals_.format != Format::kJson) {
    const v1::ValueMatch& match = key.value_match();
    out_ << "This value belongs to " << KindName(key.kind()) << " " << key.key_id() << " ("
         << key.name() << ") of project " << key.project_id() << ".\n";
    if (match.current()) {
      out_ << "It is the key's current value.\n";
    } else if (match.has_valid_until()) {
      out_ << "It is a value the key had before a rotation; it "
           << (FromProto(match.valid_until()) > absl::Now() ? "works until " : "stopped at ")
           << FormatTime(match.valid_until()) << ".\n";
    } else {
      out_ << "It is a value the key had before a rotation; it stopped working then.\n";
    }
    PrintTable(out_, KeyHeader(), {KeyRow(key)});
    PrintTraffic(key);
  }
  if (!revoke) return 0;
  if (key.kind() == v1::SECRET_KEY) {
    err_ << "error: secret keys are deleted, not revoked: latchkeyctl secret delete "
         << key.key_id() << "\n";
    return 1;
  }
  if (key.legacy()) {
    err_ << "error: the legacy API key cannot be revoked; give it a new value: latchkeyctl key "
            "rotate "
         << key.key_id() << "\n";
    return 1;
  }
  return KeyRevoke(key.key_id(), wait);
}

int Ctl::WaitForPropagation(uint64_t revision, absl::Duration timeout, const std::string& what) {
  const absl::Time deadline = absl::Now() + timeout;
  v1::GetPropagationRequest req;
  req.set_revision(revision);
  v1::GetPropagationResponse receipt;
  // Sidecars gone without a goodbye count too: they may still be serving.
  auto sidecars = [&receipt] {
    return receipt.sidecars_connected() + receipt.sidecars_disconnected();
  };
  for (;;) {
    if (grpc::Status s = admin_->GetPropagation(Context().get(), req, &receipt); !s.ok()) {
      return Fail("get propagation", s);
    }
    if (receipt.sidecars_applied() == sidecars() || absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(2));
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, receipt);
  } else if (sidecars() == 0) {
    out_ << what << "; no sidecars connected\n";
  } else {
    const double ms = absl::ToDoubleMilliseconds(FromProto(receipt.slowest_apply_delay()));
    out_ << what << "; applied on " << receipt.sidecars_applied() << "/" << sidecars()
         << " sidecars";
    if (receipt.sidecars_applied() > 0) out_ << " in " << fmt::format("{:.1f}", ms) << " ms";
    const absl::Time now = absl::Now();
    for (int i = 0; i < receipt.missing_sidecars_size(); ++i) {
      const v1::MissingSidecar& m = receipt.missing_sidecars(i);
      out_ << (i == 0 ? "; missing: " : ", ") << m.sidecar_id();
      if (m.has_disconnected_time()) {
        const absl::Duration ago = now - FromProto(m.disconnected_time());
        out_ << " (disconnected " << absl::ToInt64Seconds(ago) << " s ago)";
      }
    }
    out_ << "\n";
  }
  if (receipt.sidecars_applied() == sidecars()) return 0;
  err_ << "error: timed out after " << absl::FormatDuration(timeout)
       << " waiting for every sidecar to apply revision " << revision << "\n";
  return 3;
}

int Ctl::KeyRotate(const std::string& key_id, const std::string& grace) {
  v1::RotateApiKeyRequest req;
  req.set_key_id(key_id);
  if (!grace.empty()) {
    std::optional<absl::Duration> d = ParseDuration(grace);
    if (!d) {
      err_ << "error: --grace takes a duration such as 30m, 24h or 7d\n";
      return 2;
    }
    *req.mutable_grace_period() = ToProto(*d);
  }
  v1::RotateApiKeyResponse resp;
  if (grpc::Status s = admin_->RotateApiKey(Context().get(), req, &resp); !s.ok()) {
    return Fail("rotate API key", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, resp);
    return 0;
  }
  out_ << "Rotated " << resp.key().key_id() << " (" << resp.key().name() << "). New value:\n\n  "
       << resp.api_key() << "\n\nThe old value "
       << (grace.empty() ? "stopped working now.\n"
                         : "works until " + FormatTime(resp.previous_valid_until()) + ".\n");
  return 0;
}

int Ctl::SecretGenerate(const std::string& project_id, const KeyOptions& options) {
  v1::GenerateSecretKeyRequest req;
  req.set_project_id(project_id);
  req.set_name(options.name);
  if (!ExpireTime(options, req.mutable_expire_time(), err_)) return 2;
  v1::GenerateSecretKeyResponse resp;
  if (grpc::Status s = admin_->GenerateSecretKey(Context().get(), req, &resp); !s.ok()) {
    return Fail("generate secret key", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, resp);
    return 0;
  }
  out_ << "Generated secret key " << resp.key().key_id() << " (" << resp.key().name()
       << "). It is shown once; store it now:\n\n  " << resp.secret_key() << "\n\n";
  return 0;
}

int Ctl::SecretDelete(const std::string& key_id, const std::string& confirm) {
  std::string typed = confirm;
  if (typed.empty()) {
    if (!isatty(STDIN_FILENO)) {
      err_ << "error: refusing to delete " << key_id
           << " without confirmation: no terminal to ask at; pass --confirm DELETE\n";
      return 2;
    }
    err_ << "Deleting secret key " << key_id
         << " cannot be undone; it stops working everywhere.\nType DELETE to confirm: ";
    std::getline(std::cin, typed);
  }
  v1::DeleteSecretKeyRequest req;
  req.set_key_id(key_id);
  req.set_confirm(typed);
  v1::DeleteSecretKeyResponse resp;
  if (grpc::Status s = admin_->DeleteSecretKey(Context().get(), req, &resp); !s.ok()) {
    return Fail("delete secret key", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, resp);
  } else {
    out_ << "deleted " << key_id << " at revision " << resp.revision() << "\n";
  }
  return 0;
}

int Ctl::Audit(const std::string& project_id) {
  v1::ListAuditEventsRequest req;
  req.set_project_id(project_id);
  v1::ListAuditEventsResponse all;
  if (grpc::Status s = ListAll(&v1::KeyAdmin::Stub::ListAuditEvents, req, &all); !s.ok()) {
    return Fail("list audit events", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, all);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::AuditEvent& e : all.events()) {
    rows.push_back({std::to_string(e.revision()), FormatTime(e.time()), e.actor(), e.action(),
                    e.key_id().empty() ? "-" : e.key_id(), e.detail()});
  }
  PrintTable(out_, {"REVISION", "TIME", "ACTOR", "ACTION", "KEY", "DETAIL"}, rows);
  return 0;
}

int Ctl::AuditFollow(const std::string& project_id, absl::Duration interval,
                     const std::function<bool()>& stop) {
  v1::ListAuditEventsRequest req;
  req.set_project_id(project_id);
  req.set_page_size(1000);
  bool failing = false;  // say so once per outage, not once per retry
  while (!stop()) {
    v1::ListAuditEventsResponse page;
    grpc::Status s = admin_->ListAuditEvents(Context().get(), req, &page);
    if (!s.ok()) {
      if (!Transient(s.error_code())) return Fail("follow audit events", s);
      if (!failing) {
        err_ << "warning: authority unreachable (" << s.error_message()
             << "); retrying from revision " << req.after_revision() << "\n";
        failing = true;
      }
      absl::SleepFor(interval);
      continue;
    }
    if (failing) err_ << "reconnected\n";
    failing = false;
    for (const v1::AuditEvent& e : page.events()) {
      if (globals_.format == Format::kJson) {
        PrintJsonLine(out_, e);
      } else {
        out_ << e.revision() << "  " << FormatTime(e.time()) << "  " << e.actor() << "  "
             << e.action() << "  " << (e.key_id().empty() ? "-" : e.key_id()) << "  " << e.detail()
             << "\n";
      }
      req.set_after_revision(e.revision());
    }
    out_.flush();
    if (page.next_page_token().empty()) absl::SleepFor(interval);
  }
  return 0;
}

int Ctl::PrincipalCreate(const std::string& name, const std::string& role) {
  v1::Role r;
  if (!v1::Role_Parse("ROLE_" + role, &r)) {
    err_ << "error: --role is one of ADMIN, MANAGER, MEMBER, SIDECAR\n";
    return 2;
  }
  v1::CreatePrincipalRequest req;
  req.set_name(name);
  req.set_role(r);
  v1::CreatePrincipalResponse resp;
  if (grpc::Status s = admin_->CreatePrincipal(Context().get(), req, &resp); !s.ok()) {
    return Fail("create principal", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, resp);
    return 0;
  }
  out_ << "Created principal " << resp.principal().principal_id() << " (" << name << ", " << role
       << "). Its token is shown once:\n\n  " << resp.token() << "\n\n";
  return 0;
}

int Ctl::PrincipalList() {
  v1::ListPrincipalsResponse all;
  if (grpc::Status s =
          ListAll(&v1::KeyAdmin::Stub::ListPrincipals, v1::ListPrincipalsRequest(), &all);
      !s.ok()) {
    return Fail("list principals", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, all);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::Principal& p : all.principals()) {
    rows.push_back({p.principal_id(), p.name(), v1::Role_Name(p.role()).substr(5), p.created_by(),
                    FormatTime(p.create_time())});
  }
  PrintTable(out_, {"PRINCIPAL ID", "NAME", "ROLE", "CREATED BY", "CREATED"}, rows);
  return 0;
}

int Ctl::WhoAmI() {
  v1::Principal me;
  if (grpc::Status s = admin_->WhoAmI(Context().get(), v1::WhoAmIRequest(), &me); !s.ok()) {
    return Fail("who am I", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, me);
    return 0;
  }
  const std::string role = me.role() == v1::ROLE_UNSPECIFIED ? "(none organization-wide)"
                                                             : v1::Role_Name(me.role()).substr(5);
  PrintTable(out_, {"PRINCIPAL ID", "NAME", "ROLE", "SIGNED IN WITH"},
             {{me.principal_id(), me.name(), role,
               me.credential() == "oidc" ? "OIDC ID token" : "principal token"}});
  out_ << "\ncredential from: " << credential_source_ << "\n";
  if (me.groups_size() > 0) out_ << "groups: " << absl::StrJoin(me.groups(), ", ") << "\n";
  if (me.bindings_size() > 0) {
    std::vector<std::vector<std::string>> rows;
    for (const v1::RoleBinding& b : me.bindings()) {
      rows.push_back({b.binding_id(),
                      b.user().empty() && b.group().empty()
                          ? "principal"
                          : (b.user().empty() ? "group " + b.group() : "user"),
                      v1::Role_Name(b.role()).substr(5),
                      b.project_id().empty() ? "(organization)" : b.project_id()});
    }
    out_ << "\n";
    PrintTable(out_, {"BINDING ID", "VIA", "ROLE", "PROJECT"}, rows);
  }
  return 0;
}

int Ctl::PrincipalDelete(const std::string& principal_id) {
  v1::DeletePrincipalRequest req;
  req.set_principal_id(principal_id);
  v1::DeletePrincipalResponse resp;
  if (grpc::Status s = admin_->DeletePrincipal(Context().get(), req, &resp); !s.ok()) {
    return Fail("delete principal", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, resp);
  } else {
    out_ << "deleted principal " << principal_id << "; its token stopped working\n";
  }
  return 0;
}

int Ctl::WebhookCreate(const std::string& url, const std::string& events,
                       const std::string& project_id, const std::string& format) {
  v1::CreateWebhookRequest req;
  req.set_url(url);
  for (absl::string_view e : absl::StrSplit(events, ',', absl::SkipWhitespace())) {
    req.add_events(std::string(absl::StripAsciiWhitespace(e)));
  }
  req.set_project_id(project_id);
  req.set_format(format == "slack" ? v1::WEBHOOK_FORMAT_SLACK : v1::WEBHOOK_FORMAT_JSON);
  v1::CreateWebhookResponse resp;
  if (grpc::Status s = admin_->CreateWebhook(Context().get(), req, &resp); !s.ok()) {
    return Fail("create webhook", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, resp);
    return 0;
  }
  out_ << "Created webhook " << resp.webhook().webhook_id()
       << ". Its signing secret is shown once:\n\n  " << resp.secret()
       << "\n\nEach delivery carries Latchkey-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "
          "\"<t>.<body>\" with this secret>.\n";
  return 0;
}

namespace {

std::string WebhookStatusName(v1::WebhookStatus s) {
  switch (s) {
    case v1::WEBHOOK_STATUS_RETRYING:
      return "RETRYING";
    case v1::WEBHOOK_STATUS_FAILING:
      return "FAILING";
    default:
      return "HEALTHY";
  }
}

}  // namespace

int Ctl::WebhookList() {
  v1::ListWebhooksResponse all;
  if (grpc::Status s = admin_->ListWebhooks(Context().get(), v1::ListWebhooksRequest(), &all);
      !s.ok()) {
    return Fail("list webhooks", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, all);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::Webhook& w : all.webhooks()) {
    std::string status = WebhookStatusName(w.status());
    if (!w.last_error().empty()) status += " (" + w.last_error() + ")";
    rows.push_back({w.webhook_id(), w.url(), absl::StrJoin(w.events(), ","),
                    w.project_id().empty() ? "(all)" : w.project_id(),
                    w.format() == v1::WEBHOOK_FORMAT_SLACK ? "slack" : "json", status,
                    std::to_string(w.delivered_revision())});
  }
  PrintTable(out_, {"WEBHOOK ID", "URL", "EVENTS", "PROJECT", "FORMAT", "STATUS", "DELIVERED TO"},
             rows);
  return 0;
}

int Ctl::WebhookDelete(const std::string& webhook_id) {
  v1::DeleteWebhookRequest req;
  req.set_webhook_id(webhook_id);
  v1::DeleteWebhookResponse resp;
  if (grpc::Status s = admin_->DeleteWebhook(Context().get(), req, &resp); !s.ok()) {
    return Fail("delete webhook", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, resp);
  } else {
    out_ << "deleted webhook " << webhook_id << "; nothing more is sent to it\n";
  }
  return 0;
}

namespace {

std::vector<std::string> DeliveryRow(const v1::WebhookDelivery& d) {
  return {FormatTime(d.time()),
          d.event_type(),
          d.event_id(),
          d.revision() == 0 ? "-" : std::to_string(d.revision()),
          std::to_string(d.attempt()),
          d.status_code() == 0 ? "-" : std::to_string(d.status_code()),
          StrCat(d.duration_ms(), " ms"),
          d.error().empty() ? "delivered" : d.error()};
}

const std::vector<std::string> kDeliveryColumns = {"TIME",    "EVENT", "EVENT ID", "REVISION",
                                                   "ATTEMPT", "HTTP",  "TOOK",     "OUTCOME"};

}  // namespace

int Ctl::WebhookDeliveries(const std::string& webhook_id) {
  v1::ListWebhookDeliveriesRequest req;
  req.set_webhook_id(webhook_id);
  v1::ListWebhookDeliveriesResponse resp;
  if (grpc::Status s = admin_->ListWebhookDeliveries(Context().get(), req, &resp); !s.ok()) {
    return Fail("list webhook deliveries", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, resp);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::WebhookDelivery& d : resp.deliveries()) rows.push_back(DeliveryRow(d));
  PrintTable(out_, kDeliveryColumns, rows);
  return 0;
}

int Ctl::WebhookTest(const std::string& webhook_id) {
  v1::TestWebhookRequest req;
  req.set_webhook_id(webhook_id);
  v1::WebhookDelivery d;
  if (grpc::Status s = admin_->TestWebhook(Context().get(), req, &d); !s.ok()) {
    return Fail("test webhook", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, d);
  } else {
    PrintTable(out_, kDeliveryColumns, {DeliveryRow(d)});
  }
  return d.error().empty() ? 0 : 1;
}

int Ctl::Propagation(uint64_t revision) {
  return WaitForPropagation(revision, absl::ZeroDuration(), StrCat("revision ", revision));
}

int Ctl::Validate(const std::string& key, const std::string& sidecar) {
  auto stub =
      v1::Validator::NewStub(grpc::CreateChannel(sidecar, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ValidateRequest req;
  req.set_key(key);
  v1::ValidateResponse resp;
  if (grpc::Status s = stub->Validate(&ctx, req, &resp); !s.ok()) return Fail("validate", s);
  if (globals_.format == Format::kJson) {
    PrintJson(out_, resp);
    return 0;
  }
  out_ << v1::Verdict_Name(resp.verdict());
  if (!resp.key_id().empty()) {
    out_ << "  " << (resp.kind() == v1::SECRET_KEY ? "secret key " : "API key ") << resp.key_id()
         << " of project " << resp.project_id();
  }
  out_ << "\n";
  return resp.verdict() == v1::VALID ? 0 : 4;
}

int Ctl::Health(const std::string& address) {
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!address.starts_with("unix:")) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> tls =
        ChannelCredentials(globals_.tls);
    if (!tls.ok()) {
      err_ << "error: " << tls.status().message() << "\n";
      return 2;
    }
    creds = *tls;
  }
  auto stub = grpc::health::v1::Health::NewStub(grpc::CreateChannel(address, creds));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  grpc::health::v1::HealthCheckResponse resp;
  if (grpc::Status s = stub->Check(&ctx, {}, &resp); !s.ok()) return Fail("health", s);
  out_ << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()) << "\n";
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace latchkey::cli

extern "C" char** environ;

namespace latchkey::cli {

int Ctl::Login(std::string issuer, std::string client_id, const std::string& ca_file,
               bool no_browser) {
  if (issuer.empty() || client_id.empty()) {
    absl::StatusOr<std::optional<SavedLogin>> last = LoadLogin(globals_.credentials_path);
    if (!last.ok() || !last->has_value()) {
      err_ << "error: the first login needs --issuer and --client-id (the authority's "
              "--oidc-issuer-url and --oidc-client-id)\n";
      return 2;
    }
    if (issuer.empty()) issuer = (*last)->issuer;
    if (client_id.empty()) client_id = (*last)->client_id;
  }
  LoginOptions options;
  options.issuer = issuer;
  options.client_id = client_id;
  options.ca_file = ca_file;
  absl::StatusOr<SavedLogin> login = cli::Login(options, [&](const std::string& url) {
    err_ << "Open this page to sign in (waiting up to 5 minutes):\n\n  " << url << "\n\n";
    err_.flush();
    // A browser when there is a desktop to show it; the URL works either way.
    // Run with an argument list, never a shell: the URL comes from the
    // provider's discovery document.
    if (!no_browser && std::getenv("DISPLAY") != nullptr) {
      std::string program = "xdg-open";
      std::string argument = url;
      char* argv[] = {program.data(), argument.data(), nullptr};
      pid_t pid = 0;
      if (posix_spawnp(&pid, "xdg-open", nullptr, nullptr, argv, environ) != 0) {
        err_ << "(could not open a browser)\n";
      }
    }
  });
  if (!login.ok()) {
    err_ << "error: login: " << login.status().message() << "\n";
    return 1;
  }
  if (absl::Status s = SaveLogin(globals_.credentials_path, *login); !s.ok()) {
    err_ << "error: login: " << s.message() << "\n";
    return 1;
  }
  globals_.token = login->id_token;
  credential_source_ = "latchkeyctl login (" + globals_.credentials_path + ")";
  v1::Principal me;
  if (grpc::Status s = admin_->WhoAmI(Context().get(), v1::WhoAmIRequest(), &me); !s.ok()) {
    return Fail("signed in at the provider, but the authority refused it", s);
  }
  out_ << "Logged in as " << me.name() << "; the sign-in is kept in " << globals_.credentials_path
       << "\n";
  return 0;
}

int Ctl::Logout() {
  std::error_code error;
  const bool removed = std::filesystem::remove(globals_.credentials_path, error);
  if (error) {
    err_ << "error: logout: " << error.message() << "\n";
    return 1;
  }
  out_ << (removed ? "Logged out; forgot " + globals_.credentials_path + "\n" : "Not logged in.\n");
  return 0;
}

}  // namespace latchkey::cli
