// Principals and their tokens: the in-memory token table that authenticates
// every call, the first ADMIN, and the principal methods of KeyAdmin.
#include <algorithm>
#include <functional>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "authority/core/internal/mutations.h"
#include "authority/core/internal/requests.h"
#include "authority/core/key_authority.h"
#include "common/files.h"
#include "common/key_format.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace latchkey {

using internal::Audit;
using internal::Erase;
using internal::PrincipalRecord;
using internal::Put;

absl::Status KeyAuthority::ForEachRow(Table table, std::string_view guard, Transaction* tx,
                                      const std::function<absl::Status(const Row&)>& visit) const {
  if (tx != nullptr) {
    absl::StatusOr<std::optional<std::string>> read = tx->Get(Table::kGuards, guard);
    if (!read.ok()) return read.status();
  }
  std::string after;
  for (;;) {
    absl::StatusOr<Page> page =
        tx != nullptr ? tx->Scan(table, "", after, 1000) : store_->Scan(table, "", after, 1000);
    if (!page.ok()) return page.status();
    for (const Row& row : page->rows) {
      if (absl::Status s = visit(row); !s.ok()) return s;
    }
    if (!page->more) return absl::OkStatus();
    after = page->rows.back().key;
  }
}

absl::Status KeyAuthority::ForEachPrincipal(
    const std::function<void(const PrincipalRecord&)>& visit, Transaction* tx) const {
  return ForEachRow(Table::kPrincipals, internal::kPrincipalsGuard, tx, [&](const Row& row) {
    PrincipalRecord rec;
    if (!rec.ParseFromString(row.value)) return absl::DataLossError("principal record");
    visit(rec);
    return absl::OkStatus();
  });
}

absl::Status KeyAuthority::LoadPrincipals() { return ReloadPrincipals(); }

absl::StatusOr<int> KeyAuthority::CountAdmins(Transaction& tx) const {
  int admins = 0;
  absl::Status scanned = ForEachPrincipal(
      [&admins](const PrincipalRecord& rec) {
        admins += rec.principal().role() == v1::ROLE_ADMIN ? 1 : 0;
      },
      &tx);
  if (!scanned.ok()) return scanned;
  return admins;
}

void KeyAuthority::Remember(const PrincipalRecord& rec) {
  const v1::Principal& p = rec.principal();
  MutexLock turn(&reload_mu_);  // after any reload that may have read before it
  MutexLock lock(&principals_mu_);
  principals_[rec.token_digest()] = Caller{p.principal_id(), p.name(), p.role()};
}

absl::StatusOr<Caller> KeyAuthority::Authenticate(std::string_view token) const {
  absl::StatusOr<Caller> caller = absl::UnauthenticatedError("missing or malformed token");
  if (IsWellFormedToken(token)) {
    MutexLock lock(&principals_mu_);
    auto it = principals_.find(Sha256Bytes(token));
    if (it == principals_.end()) {
      caller = absl::UnauthenticatedError("unknown token");
    } else {
      caller = it->second;
      ApplyBindings(bindings_, *caller);
    }
  } else if (IsIdTokenShaped(token) && id_tokens_) {
    // Verified outside the lock: an unknown signing key fetches the issuer's.
    absl::StatusOr<OidcIdentity> identity = id_tokens_(token);
    if (identity.ok()) {
      Caller person;
      person.principal_id = OidcCallerId(*identity);
      person.name = identity->username;
      person.oidc = true;
      person.groups = std::move(identity->groups);
      MutexLock lock(&principals_mu_);
      ApplyBindings(bindings_, person);
      caller = std::move(person);
    } else {
      caller = identity.status();
    }
  } else if (IsIdTokenShaped(token)) {
    caller = absl::UnauthenticatedError(
        "an ID token, but this authority signs no one in with OIDC (--oidc-issuer-url)");
  }
  if (!caller.ok()) failed_auth_.fetch_add(1, std::memory_order_relaxed);
  return caller;
}

PrincipalRecord KeyAuthority::NewPrincipal(const Caller& creator, std::string_view name,
                                           v1::Role role, const std::string& token, absl::Time now,
                                           Mutation& m) {
  PrincipalRecord rec;
  v1::Principal& p = *rec.mutable_principal();
  p.set_principal_id(GeneratePrincipalId());
  p.set_name(std::string(name));
  p.set_role(role);
  p.set_created_by(creator.name);
  *p.mutable_create_time() = ToProto(now);
  rec.set_token_digest(Sha256Bytes(token));
  m.writes.push_back(Put(Table::kPrincipals, p.principal_id(), rec));
  m.audit = Audit(creator, "principal.created", "", "",
                  StrCat(p.principal_id(), " name=", name, " role=", v1::Role_Name(role)), now);
  return rec;
}

absl::StatusOr<bool> KeyAuthority::BootstrapAdmin(const std::string& token_path) {
  return Bootstrap([&]() -> absl::StatusOr<std::string> {
    // The file first: a crash before the commit leaves a token that opens
    // nothing, never an admin nobody can reach.
    std::string token = GenerateToken();
    absl::Status written = WritePrivateFile(token_path, token + "\n");
    if (!written.ok()) return written;
    return token;
  });
}

absl::StatusOr<bool> KeyAuthority::BootstrapAdminWithToken(const std::string& token) {
  if (!IsWellFormedToken(token)) {
    return absl::InvalidArgumentError(
        "the bootstrap token is not a well-formed latchkey token; make one with "
        "`latchkey-authority new-token`");
  }
  return Bootstrap([&]() -> absl::StatusOr<std::string> { return token; });
}

absl::StatusOr<bool> KeyAuthority::Bootstrap(
    const std::function<absl::StatusOr<std::string>()>& make_token) {
  PrincipalRecord admin;
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    absl::StatusOr<std::optional<std::string>> guard =
        tx.Get(Table::kGuards, internal::kPrincipalsGuard);
    if (!guard.ok()) return guard.status();
    absl::StatusOr<Page> any = tx.Scan(Table::kPrincipals, "", "", 1);
    if (!any.ok()) return any.status();
    if (!any->rows.empty()) return Built::kUnchanged;
    absl::StatusOr<std::optional<std::string>> check =
        tx.Get(Table::kGuards, internal::kMasterKeyCheck);
    if (!check.ok()) return check.status();
    if (!check->has_value()) {
      absl::StatusOr<std::string> sealed =
          sealer_.Seal(internal::kMasterKeyCheck, internal::kMasterKeyCheck);
      if (!sealed.ok()) return sealed.status();
      m.writes.push_back(Write{Table::kGuards, internal::kMasterKeyCheck, *std::move(sealed)});
    }
    absl::StatusOr<std::string> token = make_token();
    if (!token.ok()) return token.status();
    admin = NewPrincipal(Caller{"", "latchkey", v1::ROLE_UNSPECIFIED}, "admin", v1::ROLE_ADMIN,
                         *token, absl::Now(), m);
    internal::TouchGuard(m, internal::kPrincipalsGuard, tx.revision());
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  if (*rev == 0) return false;
  Remember(admin);
  return true;
}

absl::Status KeyAuthority::ReloadPrincipals() {
  std::vector<std::string> gone;
  PrincipalListener listener;
  {
    // Read and replace in one turn (reload_mu_).
    MutexLock turn(&reload_mu_);
    absl::flat_hash_map<std::string, Caller> now;
    absl::Status scanned = ForEachPrincipal([&now](const PrincipalRecord& rec) {
      const v1::Principal& p = rec.principal();
      now[rec.token_digest()] = Caller{p.principal_id(), p.name(), p.role()};
    });
    if (!scanned.ok()) return scanned;
    absl::StatusOr<std::vector<v1::RoleBinding>> bindings = LoadRoleBindings();
    if (!bindings.ok()) return bindings.status();
    MutexLock lock(&principals_mu_);
    bindings_ = *std::move(bindings);
    for (const auto& [digest, caller] : principals_) {
      if (!now.contains(digest)) gone.push_back(caller.principal_id);
    }
    principals_ = std::move(now);
    listener = principal_deleted_;
  }
  if (listener) {
    for (const std::string& id : gone) listener(id);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::CreatePrincipalResponse> KeyAuthority::CreatePrincipal(
    const Caller& caller, const v1::CreatePrincipalRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kPrincipals); !s.ok()) return s;
  if (absl::Status s = internal::CheckName(req.name(), "name"); !s.ok()) return s;
  if (req.role() == v1::ROLE_UNSPECIFIED || !v1::Role_IsValid(req.role())) {
    return absl::InvalidArgumentError("role must be ADMIN, MANAGER, MEMBER or SIDECAR");
  }
  const std::string token = GenerateToken();
  PrincipalRecord rec;
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    // Names are unique, ignoring ASCII case, so that an audit line's actor is
    // one principal (read under the principals' guard: two racing creations
    // cannot both pass, on one replica or two).
    bool taken = false;
    absl::Status scanned = ForEachPrincipal(
        [&](const PrincipalRecord& other) {
          taken = taken || absl::EqualsIgnoreCase(other.principal().name(), req.name());
        },
        &tx);
    if (!scanned.ok()) return scanned;
    if (taken) return absl::AlreadyExistsError("a principal named " + req.name() + " exists");
    rec = NewPrincipal(caller, req.name(), req.role(), token, absl::Now(), m);
    internal::TouchGuard(m, internal::kPrincipalsGuard, tx.revision());
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  Remember(rec);
  v1::CreatePrincipalResponse resp;
  *resp.mutable_principal() = rec.principal();
  resp.set_token(token);
  return resp;
}

absl::StatusOr<v1::ListPrincipalsResponse> KeyAuthority::ListPrincipals(
    const Caller& caller, const v1::ListPrincipalsRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kPrincipals); !s.ok()) return s;
  absl::StatusOr<int> size = internal::PageSize(req.page_size());
  if (!size.ok()) return size.status();
  absl::StatusOr<std::string> after = internal::DecodePageToken(req.page_token(), "principals");
  if (!after.ok()) return after.status();
  absl::StatusOr<Page> page = store_->Scan(Table::kPrincipals, "", *after, *size);
  if (!page.ok()) return page.status();
  v1::ListPrincipalsResponse resp;
  for (const Row& row : page->rows) {
    PrincipalRecord rec;
    if (!rec.ParseFromString(row.value)) return absl::DataLossError("principal record");
    *resp.add_principals() = rec.principal();
  }
  if (page->more) {
    resp.set_next_page_token(internal::EncodePageToken("principals", page->rows.back().key));
  }
  return resp;
}

absl::StatusOr<v1::Principal> KeyAuthority::WhoAmI(const Caller& caller,
                                                   const v1::WhoAmIRequest& /*req*/) {
  v1::Principal me;
  if (caller.oidc) {
    me.set_principal_id(caller.principal_id);
    me.set_name(caller.name);
    me.set_role(caller.role);
    me.set_credential("oidc");
    for (const std::string& g : caller.groups) me.add_groups(g);
  } else {
    absl::StatusOr<std::optional<std::string>> row =
        store_->Get(Table::kPrincipals, caller.principal_id);
    if (!row.ok()) return row.status();
    // Deleted between authentication and this read: the token opens nothing now.
    if (!row->has_value()) return absl::UnauthenticatedError("unknown token");
    PrincipalRecord rec;
    if (!rec.ParseFromString(**row)) return absl::DataLossError("principal record");
    me = rec.principal();
    me.set_credential("token");
  }
  MutexLock lock(&principals_mu_);
  for (const v1::RoleBinding& b : bindings_) {
    if (Names(b, caller)) *me.add_bindings() = b;
  }
  return me;
}

void KeyAuthority::SetPrincipalDeletedListener(PrincipalListener listener) {
  MutexLock lock(&principals_mu_);
  principal_deleted_ = std::move(listener);
}

absl::StatusOr<v1::DeletePrincipalResponse> KeyAuthority::DeletePrincipal(
    const Caller& caller, const v1::DeletePrincipalRequest& req) {
  if (absl::Status s = Authorize(caller, Permission::kPrincipals); !s.ok()) return s;
  if (absl::Status s = internal::CheckId(req.principal_id(), kPrincipalIdPrefix,
                                         kPrincipalIdRandomChars, "principal_id");
      !s.ok()) {
    return s;
  }
  PrincipalRecord rec;
  absl::StatusOr<uint64_t> rev = Mutate([&](Transaction& tx, Mutation& m) -> absl::StatusOr<Built> {
    absl::StatusOr<std::optional<std::string>> row = tx.Get(Table::kPrincipals, req.principal_id());
    if (!row.ok()) return row.status();
    if (!row->has_value()) return absl::NotFoundError("no principal " + req.principal_id());
    if (!rec.ParseFromString(**row)) return absl::DataLossError("principal record");
    if (rec.principal().role() == v1::ROLE_ADMIN) {
      // Counted in the store under the principals' guard, not in the token
      // table, which learns of a deletion only after its commit: two
      // concurrent deletions of the last two admins cannot both pass.
      absl::StatusOr<int> admins = CountAdmins(tx);
      if (!admins.ok()) return admins.status();
      if (*admins <= 1) {
        return absl::FailedPreconditionError("cannot delete the last ADMIN principal");
      }
    }
    m.writes.push_back(Erase(Table::kPrincipals, req.principal_id()));
    internal::TouchGuard(m, internal::kPrincipalsGuard, tx.revision());
    m.audit = Audit(caller, "principal.deleted", "", "",
                    StrCat(req.principal_id(), " name=", rec.principal().name()), absl::Now());
    return Built::kCommit;
  });
  if (!rev.ok()) return rev.status();
  PrincipalListener listener;
  {
    MutexLock turn(&reload_mu_);
    MutexLock lock(&principals_mu_);
    principals_.erase(rec.token_digest());
    listener = principal_deleted_;
  }
  if (listener) listener(req.principal_id());
  v1::DeletePrincipalResponse resp;
  resp.set_revision(*rev);
  return resp;
}

}  // namespace latchkey
