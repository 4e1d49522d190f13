// latchkeyctl role ...: role bindings (docs/design.md, "Sign-in and roles").
#include "cli/ctl.h"
#include "cli/output.h"

namespace latchkey::cli {

namespace {

// "user bob@example.com", "group platform", "principal ci".
std::string Subject(const v1::RoleBinding& b) {
  if (!b.user().empty()) return "user " + b.user();
  if (!b.group().empty()) return "group " + b.group();
  return "principal " + b.principal_name();
}

}  // namespace

int Ctl::RoleBind(const RoleSubject& who, const std::string& role, const std::string& project_id) {
  v1::Role r;
  if (role == "SIDECAR" || !v1::Role_Parse("ROLE_" + role, &r)) {
    err_ << "error: --role is one of ADMIN, MANAGER, MEMBER\n";
    return 2;
  }
  v1::CreateRoleBindingRequest req;
  req.set_principal(who.principal);
  req.set_user(who.user);
  req.set_group(who.group);
  req.set_role(r);
  req.set_project_id(project_id);
  v1::RoleBinding made;
  if (grpc::Status s = admin_->CreateRoleBinding(Context().get(), req, &made); !s.ok()) {
    return Fail("bind role", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, made);
    return 0;
  }
  out_ << "Bound " << Subject(made) << " to " << role << " "
       << (project_id.empty() ? "organization-wide" : "in project " + project_id) << " ("
       << made.binding_id() << ")\n";
  return 0;
}

int Ctl::RoleList(const std::string& project_id) {
  v1::ListRoleBindingsRequest req;
  req.set_project_id(project_id);
  v1::ListRoleBindingsResponse all;
  if (grpc::Status s = admin_->ListRoleBindings(Context().get(), req, &all); !s.ok()) {
    return Fail("list role bindings", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, all);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::RoleBinding& b : all.bindings()) {
    rows.push_back({b.binding_id(), Subject(b), v1::Role_Name(b.role()).substr(5),
                    b.project_id().empty() ? "(organization)" : b.project_id(), b.created_by(),
                    FormatTime(b.create_time())});
  }
  PrintTable(out_, {"BINDING ID", "WHO", "ROLE", "PROJECT", "CREATED BY", "CREATED"}, rows);
  return 0;
}

int Ctl::RoleUnbind(const std::string& binding_id) {
  v1::DeleteRoleBindingRequest req;
  req.set_binding_id(binding_id);
  v1::DeleteRoleBindingResponse resp;
  if (grpc::Status s = admin_->DeleteRoleBinding(Context().get(), req, &resp); !s.ok()) {
    return Fail("unbind role", s);
  }
  if (globals_.format == Format::kJson) {
    PrintJson(out_, resp);
  } else {
    out_ << "unbound " << binding_id << "; the role it gave is gone\n";
  }
  return 0;
}

}  // namespace latchkey::cli
