#include "authority/core/access.h"

#include <algorithm>

#include "common/strings.h"

namespace latchkey {

namespace {

int Rank(v1::Role r) {
  switch (r) {
    case v1::ROLE_ADMIN:
      return 3;
    case v1::ROLE_MANAGER:
      return 2;
    case v1::ROLE_MEMBER:
      return 1;
    default:
      return 0;
  }
}

absl::Status Denied(const Caller& caller, v1::Role role) {
  return absl::PermissionDeniedError(StrCat(caller.oidc ? "user " : "principal ", caller.name, " (",
                                            v1::Role_Name(role), ") may not do this"));
}

}  // namespace

std::string OidcCallerId(const OidcIdentity& identity) {
  return StrCat("oidc:", identity.issuer, "#", identity.subject);
}

bool Grants(v1::Role r, Permission p) {
  switch (p) {
    case Permission::kRead:
      return r == v1::ROLE_ADMIN || r == v1::ROLE_MANAGER || r == v1::ROLE_MEMBER;
    case Permission::kWrite:
      return r == v1::ROLE_ADMIN || r == v1::ROLE_MANAGER;
    case Permission::kPrincipals:
    case Permission::kWebhooks:
      return r == v1::ROLE_ADMIN;
    case Permission::kSync:
      return r == v1::ROLE_ADMIN || r == v1::ROLE_SIDECAR;
  }
  return false;
}

v1::Role HigherRole(v1::Role a, v1::Role b) { return Rank(b) > Rank(a) ? b : a; }

v1::Role RoleIn(const Caller& caller, std::string_view project_id) {
  auto it = caller.project_roles.find(absl::string_view(project_id.data(), project_id.size()));
  return it == caller.project_roles.end() ? caller.role : HigherRole(caller.role, it->second);
}

bool IsIdTokenShaped(std::string_view token) {
  return std::count(token.begin(), token.end(), '.') == 2;
}

absl::Status Authorize(const Caller& caller, Permission p) {
  // A sidecar's stream outlives any one ID token and any binding: keys sync
  // to principals only, whose deletion ends their streams.
  if (p == Permission::kSync && caller.oidc) {
    return absl::PermissionDeniedError(
        "keys sync to sidecars with a principal token, not a person's ID token");
  }
  if (Grants(caller.role, p)) return absl::OkStatus();
  return Denied(caller, caller.role);
}

absl::Status AuthorizeIn(const Caller& caller, Permission p, std::string_view project_id,
                         std::string_view what, std::string_view id) {
  const v1::Role role = RoleIn(caller, project_id);
  if (Grants(role, p)) return absl::OkStatus();
  if (role == v1::ROLE_UNSPECIFIED) return absl::NotFoundError(StrCat("no ", what, " ", id));
  return Denied(caller, role);
}

absl::Status AuthorizeAnywhere(const Caller& caller, Permission p) {
  if (Grants(caller.role, p)) return absl::OkStatus();
  for (const auto& [project, role] : caller.project_roles) {
    if (Grants(role, p)) return absl::OkStatus();
  }
  return Denied(caller, caller.role);
}

bool Names(const v1::RoleBinding& b, const Caller& caller) {
  if (!caller.oidc) return !b.principal_id().empty() && b.principal_id() == caller.principal_id;
  if (!b.user().empty()) return b.user() == caller.name;
  if (!b.group().empty()) {
    return std::find(caller.groups.begin(), caller.groups.end(), b.group()) != caller.groups.end();
  }
  return false;
}

void ApplyBindings(const std::vector<v1::RoleBinding>& bindings, Caller& caller) {
  for (const v1::RoleBinding& b : bindings) {
    if (!Names(b, caller)) continue;
    if (b.project_id().empty()) {
      caller.role = HigherRole(caller.role, b.role());
    } else {
      v1::Role& in = caller.project_roles[b.project_id()];
      in = HigherRole(in, b.role());
    }
  }
}

}  // namespace latchkey
