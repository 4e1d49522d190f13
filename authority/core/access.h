// Who is calling and what they may do (docs/design.md, "Sign-in and roles").
//
// A caller is a principal (its token) or a person signed in with the
// organization's identity provider (an OIDC ID token). Its role in a project
// is the highest of its organization-wide role and its role in that project;
// role bindings (core/role_bindings.cc) give both. A caller with no
// organization-wide role sees only the projects it holds a role in: for it,
// every other project, and every key in one, does not exist (NOT_FOUND, the
// same answer as for one that does not).
#ifndef LATCHKEY_AUTHORITY_CORE_ACCESS_H_
#define LATCHKEY_AUTHORITY_CORE_ACCESS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "latchkey/v1/resources.pb.h"

namespace latchkey {

// A person as the identity provider vouched for them in a verified ID token.
struct OidcIdentity {
  std::string issuer;               // iss
  std::string subject;              // sub: stable at the issuer
  std::string username;             // the --oidc-username-claim value
  std::vector<std::string> groups;  // the --oidc-groups-claim values
};

// Who is calling, as established from their credential.
struct Caller {
  std::string principal_id;  // a principal's id, or OidcCallerId(identity)
  std::string name;          // the principal's name, or the OIDC username
  // The role everywhere: a principal's own role, raised by the
  // organization-wide bindings that name the caller.
  v1::Role role = v1::ROLE_UNSPECIFIED;
  // Roles in single projects, from the project bindings that name the caller.
  absl::flat_hash_map<std::string, v1::Role> project_roles = {};
  bool oidc = false;                     // signed in with an ID token
  std::vector<std::string> groups = {};  // its OIDC groups
};

// The stable id of a person signed in with OIDC: audit records and a key's
// last action carry it beside the username, which may change.
std::string OidcCallerId(const OidcIdentity& identity);

// What a caller may do; each role grants a set of these.
enum class Permission {
  kRead,        // metadata: projects, keys, audit (ADMIN, MANAGER, MEMBER)
  kWrite,       // create, revoke, rotate, delete, read key values (ADMIN, MANAGER)
  kPrincipals,  // manage principals and role bindings (ADMIN)
  kSync,        // KeySync (ADMIN, SIDECAR)
  kWebhooks,    // manage webhooks (ADMIN)
};

// Whether `role` grants `p`.
bool Grants(v1::Role role, Permission p);

// The higher of two roles (ADMIN over MANAGER over MEMBER); SIDECAR and
// UNSPECIFIED are below MEMBER.
v1::Role HigherRole(v1::Role a, v1::Role b);

// The caller's role in one project.
v1::Role RoleIn(const Caller& caller, std::string_view project_id);

// Whether a bearer token has an ID token's shape (a JWS in compact form:
// three base64url parts joined by dots), as no principal token does.
bool IsIdTokenShaped(std::string_view token);

// Organization-wide: OK, or PERMISSION_DENIED for a caller whose role
// everywhere lacks `p`. kSync is for principals only.
absl::Status Authorize(const Caller& caller, Permission p);

// In one project: OK; PERMISSION_DENIED when the caller's role there lacks
// `p`; NOT_FOUND, worded as for a missing `what` named `id` ("no project
// prj_...", "no key key_..."), when the caller has no role there and none
// organization-wide.
absl::Status AuthorizeIn(const Caller& caller, Permission p, std::string_view project_id,
                         std::string_view what, std::string_view id);

// OK when some role of the caller (everywhere, or in some project) grants
// `p`: the check before loading what names its project only once read.
absl::Status AuthorizeAnywhere(const Caller& caller, Permission p);

// The bindings that name `caller`, and the roles they give, added to it.
void ApplyBindings(const std::vector<v1::RoleBinding>& bindings, Caller& caller);

// Whether `binding` names `caller`.
bool Names(const v1::RoleBinding& binding, const Caller& caller);

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_CORE_ACCESS_H_
