// Role bindings (docs/design.md, "Sign-in and roles"): each a row of
// Table::kRoleBindings, and all of them in memory beside the token table, so
// that authenticating a call resolves its roles without a store read.
#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "authority/core/internal/mutations.h"
#include "authority/core/internal/requests.h"
#include "authority/core/key_authority.h"
#include "common/key_format.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace latchkey {

using internal::Audit;
using internal::PrincipalRecord;
using internal::Put;

namespace {

// The guard row of the set of bindings: written by every change to it, read
// by the rules over the whole set (no two bindings for one subject and scope).
constexpr char kBindingsGuard[] = "role_bindings";
constexpr std::string_view kBindingIdPrefix = "rb_";
constexpr size_t kBindingIdRandomChars = 12;
// The longest OIDC username or group a binding names, in bytes.
constexpr size_t kMaxSubjectBytes = 256;

// "group platform", "user bob@example.com", "principal ci".
std::string Subject(const v1::RoleBinding& b) {
  if (!b.user().empty()) return StrCat("user ", b.user());
  if (!b.group().empty()) return StrCat("group ", b.group());
  return StrCat("principal ", b.principal_name());
}

std::string Scope(std::string_view project_id) {
  return project_id.empty() ? "organization-wide" : StrCat("in project ", project_id);
}

}  // namespace

absl::StatusOr<std::vector<v1::RoleBinding>> KeyAuthority::LoadRoleBindings(Transaction* tx) const {
  std::vector<v1::RoleBinding> all;
  absl::Status read = ForEachRow(Table::kRoleBindings, kBindingsGuard, tx, [&](const Row& row) {
    if (!all.emplace_back().ParseFromString(row.value)) {
      return absl::DataLossError("role binding record");
    }
    return absl::OkStatus();
  });
  if (!read.ok()) return read;
  return all;
}

absl::Status KeyAuthority::ReloadBindings() {
  MutexLock turn(&reload_mu_);
  absl::StatusOr<std::vector<v1::RoleBinding>> all = LoadRoleBindings();
  if (!all.ok()) return all.status();
  MutexLock lock(&principals_mu_);
  bindings_ = *std::move(all);
  return absl::OkStatus();
}

absl::StatusOr<v1::RoleBinding> KeyAuthority::CreateRoleBinding(
    const Caller& caller, const v1::CreateRoleBindingRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kPrincipals); !s.ok()) return s;
  const int subjects = !req.principal().empty() + !req.user().empty() + !req.group().empty();
  if (subjects != 1) {
    return absl::InvalidArgumentError("name exactly one of principal, user and group");
  }
  if (absl::Status s = internal::CheckText(req.user(), "user", kMaxSubjectBytes); !s.ok()) return s;
  if (absl::Status s = internal::CheckText(req.group(), "group", kMaxSubjectBytes); !s.ok()) {
    return s;
  }
  if (req.role() != v1::ROLE_ADMIN && req.role() != v1::ROLE_MANAGER &&
      req.role() != v1::ROLE_MEMBER) {
    return absl::InvalidArgumentError("role must be ADMIN, MANAGER or MEMBER");
  }
  v1::RoleBinding binding;
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    binding.Clear();
    if (!req.project_id().empty()) {
      absl::StatusOr<internal::ProjectRecord> project = LoadProject(req.project_id(), tx);
      if (!project.ok()) return project.status();
    }
    binding.set_user(req.user());
    binding.set_group(req.group());
    if (!req.principal().empty()) {
      std::optional<v1::Principal> named;
      absl::Status scanned = ForEachPrincipal(
          [&](const PrincipalRecord& rec) {
            if (absl::EqualsIgnoreCase(rec.principal().name(), req.principal())) {
              named = rec.principal();
            }
          },
          &tx);
      if (!scanned.ok()) return scanned;
      if (!named) return absl::NotFoundError(StrCat("no principal named ", req.principal()));
      if (named->role() == v1::ROLE_SIDECAR) {
        return absl::FailedPreconditionError(
            "a SIDECAR principal syncs keys only; it holds no role in projects");
      }
      binding.set_principal_id(named->principal_id());
      binding.set_principal_name(named->name());
    }
    binding.set_role(req.role());
    binding.set_project_id(req.project_id());
    absl::StatusOr<std::vector<v1::RoleBinding>> existing = LoadRoleBindings(&tx);
    if (!existing.ok()) return existing.status();
    if (existing->size() >= static_cast<size_t>(kMaxRoleBindings)) {
      return absl::ResourceExhaustedError(
          StrCat("there are already ", kMaxRoleBindings, " role bindings; delete one first"));
    }
    for (const v1::RoleBinding& other : *existing) {
      if (other.project_id() == binding.project_id() &&
          other.principal_id() == binding.principal_id() && other.user() == binding.user() &&
          other.group() == binding.group()) {
        return absl::AlreadyExistsError(StrCat(
            Subject(binding), " already holds ", v1::Role_Name(other.role()), " ",
            Scope(binding.project_id()), " (binding ", other.binding_id(), "); unbind it first"));
      }
    }
    const absl::Time now = absl::Now();
    binding.set_binding_id(GenerateId(kBindingIdPrefix, kBindingIdRandomChars));
    binding.set_created_by(caller.name);
    *binding.mutable_create_time() = ToProto(now);
    m.writes.push_back(Put(Table::kRoleBindings, binding.binding_id(), binding));
    internal::TouchGuard(m, kBindingsGuard, tx.revision());
    m.audit =
        Audit(caller, "role.bound", binding.project_id(), "",
              StrCat(binding.binding_id(), " ", Subject(binding),
                     " role=", v1::Role_Name(binding.role()), " ", Scope(binding.project_id())),
              now);
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  // From the store, not by adding to the list: a reload under way for
  // another replica's change may hold an older set.
  if (absl::Status s = ReloadBindings(); !s.ok()) {
    spdlog::warn("role bindings not reloaded after {}: {}", binding.binding_id(), s.ToString());
  }
  return binding;
}

absl::StatusOr<v1::ListRoleBindingsResponse> KeyAuthority::ListRoleBindings(
    const Caller& caller, const v1::ListRoleBindingsRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kPrincipals); !s.ok()) return s;
  absl::StatusOr<std::vector<v1::RoleBinding>> all = LoadRoleBindings();
  if (!all.ok()) return all.status();
  v1::ListRoleBindingsResponse resp;
  for (v1::RoleBinding& b : *all) {
    if (req.project_id().empty() || b.project_id() == req.project_id()) {
      *resp.add_bindings() = std::move(b);
    }
  }
  return resp;
}

absl::StatusOr<v1::DeleteRoleBindingResponse> KeyAuthority::DeleteRoleBinding(
    const Caller& caller, const v1::DeleteRoleBindingRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kPrincipals); !s.ok()) return s;
  if (absl::Status s = internal::CheckId(req.binding_id(), kBindingIdPrefix, kBindingIdRandomChars,
                                         "binding_id");
      !s.ok()) {
    return s;
  }
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    absl::StatusOr<std::optional<std::string>> row = tx.Get(Table::kRoleBindings, req.binding_id());
    if (!row.ok()) return row.status();
    if (!row->has_value()) return absl::NotFoundError(StrCat("no role binding ", req.binding_id()));
    v1::RoleBinding binding;
    if (!binding.ParseFromString(**row)) return absl::DataLossError("role binding record");
    absl::StatusOr<std::optional<std::string>> guard = tx.Get(Table::kGuards, kBindingsGuard);
    if (!guard.ok()) return guard.status();
    m.writes.push_back(internal::Erase(Table::kRoleBindings, req.binding_id()));
    internal::TouchGuard(m, kBindingsGuard, tx.revision());
    m.audit =
        Audit(caller, "role.unbound", binding.project_id(), "",
              StrCat(binding.binding_id(), " ", Subject(binding),
                     " role=", v1::Role_Name(binding.role()), " ", Scope(binding.project_id())),
              absl::Now());
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  if (absl::Status s = ReloadBindings(); !s.ok()) {
    // The role must not outlive its binding here: drop it from memory at least.
    spdlog::warn("role bindings not reloaded after unbinding {}: {}", req.binding_id(),
                 s.ToString());
    MutexLock turn(&reload_mu_);
    MutexLock lock(&principals_mu_);
    std::erase_if(bindings_,
                  [&](const v1::RoleBinding& b) { return b.binding_id() == req.binding_id(); });
  }
  v1::DeleteRoleBindingResponse resp;
  resp.set_revision(*rev);
  return resp;
}

}  // namespace latchkey
