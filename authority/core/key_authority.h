// The key lifecycle: every rule of docs/design.md "Product rules", in
// plain C++ over a KeyStore. The gRPC services are thin wrappers around it.
//
// Each method takes the authenticated caller and the request message, checks
// the caller's role, validates the request, and either commits exactly one
// Mutation or changes nothing. Mutations are serialized (through Mutate, the
// one path they all take); reads are not.
//
// The implementation is split by concern:
//   key_authority.cc      roles, the shared loads, Mutate
//   key_lifecycle.cc      projects and keys: create, revoke, rotate, delete, list, find
//   key_leaks.cc          values reported leaked, and each project's leak policy
//   key_webhooks.cc       webhooks: create, list, delete (delivery is webhook_delivery.h's)
//   key_notices.cc        notices of its own: keys expiring, revoked keys still sent
//   key_usage.cc          usage reports from sidecars and the usage a key shows
//                         (summed and written by usage_ledger.h)
//   principals.cc         tokens, authentication, principals
//   sidecar_keys.h        what sidecars hold of each key, kept beside the keys
//   internal/mutations.h  rows, audit records and checks the mutations share
//
// A KeyAuthority is safe for concurrent access from multiple threads without
// any external synchronization.
#ifndef LATCHKEY_AUTHORITY_CORE_KEY_AUTHORITY_H_
#define LATCHKEY_AUTHORITY_CORE_KEY_AUTHORITY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "authority/core/access.h"
#include "authority/core/usage_ledger.h"
#include "authority/internal/records.pb.h"
#include "authority/store/key_store.h"
#include "common/crypto.h"
#include "common/mutex.h"
#include "common/strings.h"
#include "latchkey/v1/key_admin.pb.h"
#include "latchkey/v1/key_sync.pb.h"

namespace latchkey {

struct KeyAuthorityOptions {
  int max_active_keys = 50;
  absl::Duration max_grace_period = absl::Hours(24 * 7);
  int max_retired_values = 16;  // rotated-away values a key remembers
  // Webhook URLs may be http:// beyond loopback (behind a TLS proxy).
  bool webhooks_allow_insecure_remote = false;
};

class KeyAuthority {
 public:
  // `store` must outlive the KeyAuthority. FAILED_PRECONDITION when `sealer`
  // does not open the API key values already in the store (a lost or
  // replaced master key): every stored value is its own key check value
  // (AES-GCM authenticates), and every project holds one (its legacy key).
  static absl::StatusOr<std::unique_ptr<KeyAuthority>> Create(KeyStore* store, Sealer sealer,
                                                              KeyAuthorityOptions options);

  // Whether `store` holds values sealed with a master key: then a missing
  // master key file must stop the start, not be replaced by a new key.
  static absl::StatusOr<bool> HoldsSealedValues(const KeyStore& store);

  // The caller a bearer token belongs to, with the roles its bindings give
  // it; UNAUTHENTICATED when none does. A principal's token is looked up in
  // an in-memory table, so a deleted principal fails at once; anything else
  // shaped as a JWT goes to the ID-token verifier, when there is one.
  absl::StatusOr<Caller> Authenticate(std::string_view token) const;

  // Verifies an OIDC ID token: the identity, or UNAUTHENTICATED (with a
  // reason naming no secret), or UNAVAILABLE when the issuer's keys cannot
  // be fetched. authority/identity/oidc_verifier.h is the one the server sets.
  using IdTokenVerifier = std::function<absl::StatusOr<OidcIdentity>(std::string_view token)>;
  // Set before serving; none: ID tokens are refused.
  void SetIdTokenVerifier(IdTokenVerifier verifier) { id_tokens_ = std::move(verifier); }
  uint64_t failed_authentications() const { return failed_auth_.load(std::memory_order_relaxed); }
  // Mutations built again because the store refused them (ABORTED).
  uint64_t conflict_retries() const { return conflict_retries_.load(std::memory_order_relaxed); }

  // Called with a principal's id once its deletion is committed and its
  // token no longer authenticates, on the deleting thread: for ending what
  // the principal has open (its watch streams). Must not block. Set before
  // serving.
  using PrincipalListener = std::function<void(const std::string& principal_id)>;
  void SetPrincipalDeletedListener(PrincipalListener listener) ABSL_LOCKS_EXCLUDED(principals_mu_);

  // On a store with no principals, creates an ADMIN principal named "admin"
  // and writes its token to `token_path` (0600). Does nothing otherwise.
  // Returns true when it created one.
  absl::StatusOr<bool> BootstrapAdmin(const std::string& token_path);
  // The same with the token an operator chose: replicas over one store are
  // all given it (--bootstrap-token-file), and the first to commit creates
  // the principal. INVALID_ARGUMENT for a token that is not well formed.
  absl::StatusOr<bool> BootstrapAdminWithToken(const std::string& token);

  // Reads every principal afresh into the token table, and every role
  // binding, and reports the principals gone to the deletion listener: for
  // changes another replica committed.
  absl::Status ReloadPrincipals() ABSL_LOCKS_EXCLUDED(reload_mu_, principals_mu_);

  absl::StatusOr<v1::CreateProjectResponse> CreateProject(const Caller& caller,
                                                          const v1::CreateProjectRequest& req);
  absl::StatusOr<v1::Project> GetProject(const Caller& caller, const v1::GetProjectRequest& req);
  absl::StatusOr<v1::ListProjectsResponse> ListProjects(const Caller& caller,
                                                        const v1::ListProjectsRequest& req);
  absl::StatusOr<v1::Project> SetApiAccess(const Caller& caller,
                                           const v1::SetApiAccessRequest& req);
  absl::StatusOr<v1::GenerateApiKeyResponse> GenerateApiKey(const Caller& caller,
                                                            const v1::GenerateApiKeyRequest& req);
  absl::StatusOr<v1::GetApiKeyValueResponse> GetApiKeyValue(const Caller& caller,
                                                            const v1::GetApiKeyValueRequest& req);
  absl::StatusOr<v1::Key> RevokeApiKey(const Caller& caller, const v1::RevokeApiKeyRequest& req);
  absl::StatusOr<v1::RotateApiKeyResponse> RotateApiKey(const Caller& caller,
                                                        const v1::RotateApiKeyRequest& req);
  absl::StatusOr<v1::GenerateSecretKeyResponse> GenerateSecretKey(
      const Caller& caller, const v1::GenerateSecretKeyRequest& req);
  absl::StatusOr<v1::DeleteSecretKeyResponse> DeleteSecretKey(
      const Caller& caller, const v1::DeleteSecretKeyRequest& req);
  absl::StatusOr<v1::Key> GetKey(const Caller& caller, const v1::GetKeyRequest& req);
  absl::StatusOr<v1::ListKeysResponse> ListKeys(const Caller& caller,
                                                const v1::ListKeysRequest& req);
  absl::StatusOr<v1::ListAuditEventsResponse> ListAuditEvents(
      const Caller& caller, const v1::ListAuditEventsRequest& req);
  absl::StatusOr<v1::CreatePrincipalResponse> CreatePrincipal(
      const Caller& caller, const v1::CreatePrincipalRequest& req);
  absl::StatusOr<v1::ListPrincipalsResponse> ListPrincipals(const Caller& caller,
                                                            const v1::ListPrincipalsRequest& req);
  absl::StatusOr<v1::DeletePrincipalResponse> DeletePrincipal(
      const Caller& caller, const v1::DeletePrincipalRequest& req);
  // The key `req.value` belongs to (docs/design.md, API); audited either way.
  absl::StatusOr<v1::Key> FindKey(const Caller& caller, const v1::FindKeyRequest& req);
  // What a leaked value does to the project's keys (MANAGER or ADMIN).
  absl::StatusOr<v1::Project> SetLeakPolicy(const Caller& caller,
                                            const v1::SetLeakPolicyRequest& req);
  // A value someone found in public (docs/design.md, "Leak response"), as
  // GitHub secret scanning reports it. The reporter is not a principal: its
  // report was authenticated before it came here (authority/rpc/secret_scanning.h).
  struct LeakFinding {
    std::string value;   // never logged, never stored
    std::string url;     // where it was seen
    std::string source;  // "content", "commit", ... as reported
  };
  // The longest url or source a finding may hold, in bytes.
  static constexpr size_t kMaxLeakText = 2048;
  // Whether latchkey issued the value (a current or retired value, or one a
  // leak report deleted). A value of latchkey's is recorded on its key and
  // in the audit log (key.leaked), and stopped when the project's policy is
  // REVOKE, in one mutation; a finding already recorded (same value, same
  // URL) changes nothing. A value latchkey never issued changes nothing.
  // INVALID_ARGUMENT, and nothing changes, for a url or source that is not
  // UTF-8, holds control characters or is over kMaxLeakText bytes.
  absl::StatusOr<bool> ReportLeak(const Caller& reporter, const LeakFinding& finding);
  // Webhooks (docs/design.md, "Webhooks"), ADMIN only. The deliveries
  // themselves are authority/webhooks/webhook_delivery.h's.
  static constexpr int kMaxWebhooks = 100;
  absl::StatusOr<v1::CreateWebhookResponse> CreateWebhook(const Caller& caller,
                                                          const v1::CreateWebhookRequest& req);
  // With where each one's delivery stands.
  absl::StatusOr<v1::ListWebhooksResponse> ListWebhooks(const Caller& caller,
                                                        const v1::ListWebhooksRequest& req);
  absl::StatusOr<v1::DeleteWebhookResponse> DeleteWebhook(const Caller& caller,
                                                          const v1::DeleteWebhookRequest& req);
  absl::StatusOr<v1::ListWebhookDeliveriesResponse> ListWebhookDeliveries(
      const Caller& caller, const v1::ListWebhookDeliveriesRequest& req);
  // What a deliverer needs of a webhook: its settings, its signing secret
  // and the revision its events follow.
  struct WebhookTarget {
    v1::Webhook webhook;
    std::string secret;
    uint64_t start_revision = 0;
  };
  absl::StatusOr<std::vector<WebhookTarget>> WebhookTargets() const;
  // NOT_FOUND when there is no such webhook.
  absl::StatusOr<WebhookTarget> FindWebhookTarget(std::string_view webhook_id) const;
  // The progress row of a webhook (KeyStore::PutProgress).
  static std::string WebhookProgressKey(std::string_view webhook_id);

  // Role bindings (docs/design.md, "Sign-in and roles"), ADMIN only.
  static constexpr int kMaxRoleBindings = 10000;
  absl::StatusOr<v1::RoleBinding> CreateRoleBinding(const Caller& caller,
                                                    const v1::CreateRoleBindingRequest& req);
  absl::StatusOr<v1::ListRoleBindingsResponse> ListRoleBindings(
      const Caller& caller, const v1::ListRoleBindingsRequest& req);
  absl::StatusOr<v1::DeleteRoleBindingResponse> DeleteRoleBinding(
      const Caller& caller, const v1::DeleteRoleBindingRequest& req);

  // Who the caller is: its principal record (for a person signed in with
  // OIDC, one made from the ID token), how it signed in, its groups and the
  // bindings that name it; any role may ask.
  absl::StatusOr<v1::Principal> WhoAmI(const Caller& caller, const v1::WhoAmIRequest& req);

  // Adds sidecars' validation counts and last-used times to each key's usage
  // (SIDECAR or ADMIN), in memory: reads of this authority show them at once,
  // other replicas after the next FlushUsage. Ids that are not key ids are
  // skipped; INVALID_ARGUMENT, and nothing added, for a time that is not a
  // valid timestamp.
  absl::Status RecordUsage(const Caller& caller, const v1::ReportUsageRequest& req);
  // Writes the usage added since the last flush to the store, as this
  // replica's rows (authority/core/usage_ledger.h). The server calls it every
  // --usage-flush-interval and at shutdown.
  absl::Status FlushUsage();
  // Notices the authority gives of its own accord (authority/core/key_notices.cc),
  // each one mutation audited as the webhook event of the same name:
  // key.expiring once a key enters a notice period (7 days, then 1 day)
  // before its expiry or before a retired value's grace ends. Returns how
  // many it announced. Reads every key: a sweep every few minutes, by one
  // replica.
  absl::StatusOr<int> AnnounceExpiring(absl::Time now);
  // key.rejected_after_revocation for revoked keys that sidecars still
  // send, at most hourly per key. FlushUsage calls it with what it wrote.
  absl::Status AnnounceStillSent(const std::vector<UsageLedger::StillSent>& keys, absl::Time now);
  // What a committed change asks of the server beyond the key set.
  struct Consequences {
    // Principals or role bindings changed: a replica reloads them.
    bool principals = false;
    bool webhooks = false;  // webhooks changed: their deliveries are looked at again
  };
  // Called with every committed change, this replica's and (on a shared
  // store) the others', from the store's commit listener, so it is quick:
  // usage reported before a key's revocation does not count as since it.
  // The consequences follow from the tables the change wrote.
  Consequences Committed(const v1::KeyEvent& event, TableSet written);

 private:
  KeyAuthority(KeyStore* store, Sealer sealer, KeyAuthorityOptions options)
      : store_(store), sealer_(std::move(sealer)), options_(options), usage_(store) {}

  absl::Status LoadPrincipals();
  // Gives every key its sidecar keys row, once, for a store written before
  // them (sidecar_keys.h); waits while another replica does it.
  absl::Status FillSidecarKeys() ABSL_LOCKS_EXCLUDED(mu_);
  // Records at the head revision, or read through `tx` for a mutation.
  absl::StatusOr<internal::KeyRecord> LoadKey(std::string_view key_id) const;
  absl::StatusOr<internal::KeyRecord> LoadKey(std::string_view key_id, Transaction& tx) const;
  // The key, once the caller may do `p` in its project (AuthorizeIn).
  absl::StatusOr<internal::KeyRecord> LoadKeyFor(const Caller& caller, Permission p,
                                                 std::string_view key_id) const;
  absl::StatusOr<internal::KeyRecord> LoadKeyFor(const Caller& caller, Permission p,
                                                 std::string_view key_id, Transaction& tx) const;
  absl::StatusOr<internal::ProjectRecord> LoadProject(std::string_view project_id) const;
  absl::StatusOr<internal::ProjectRecord> LoadProject(std::string_view project_id,
                                                      Transaction& tx) const;
  // The key as returned by the API: its record's metadata plus usage.
  absl::StatusOr<v1::Key> WithUsage(v1::Key key) const;
  // The one path of every mutation (docs/design.md, "Mutations"):
  // `build(tx, m)` reads what it needs through `tx`, checks the rules and
  // fills `m`, which will take tx.revision(); or it returns an error, and
  // nothing changes; or kUnchanged when there is nothing to do (Mutate then
  // returns revision 0). The store commits `m` only if the revision is still
  // next and every row read still holds what was read; when it refuses
  // (ABORTED: another replica, or another process, committed first) the
  // mutation is built again from fresh reads. Mutate returns once it is
  // durable; other mutations proceed during the flush.
  //
  // mu_ orders this process's mutations so that they do not refuse each
  // other; correctness rests on the store's checks, not on mu_.
  enum class Built { kCommit, kUnchanged };
  static constexpr int kMaxMutationAttempts = 64;
  template <typename Build>
  absl::StatusOr<uint64_t> Mutate(Build build) ABSL_LOCKS_EXCLUDED(mu_) {
    for (int attempt = 1;; ++attempt) {
      absl::StatusOr<uint64_t> committed = MutateOnce(build);
      if (!absl::IsAborted(committed.status())) return committed;
      conflict_retries_.fetch_add(1, std::memory_order_relaxed);
      if (attempt == kMaxMutationAttempts) {
        return absl::AbortedError(StrCat("gave up after ", attempt,
                                         " attempts: other changes kept committing first; "
                                         "try again"));
      }
      BackOff(attempt);
    }
  }
  template <typename Build>
  absl::StatusOr<uint64_t> MutateOnce(Build& build) ABSL_LOCKS_EXCLUDED(mu_) {
    store_->AwaitKnownRevisions();  // may wait: before mu_, which every mutation takes
    ReleasableMutexLock lock(&mu_);
    Transaction tx(*store_);
    Mutation m;
    absl::StatusOr<Built> built = build(tx, m);
    if (!built.ok()) return built.status();
    if (*built == Built::kUnchanged) return uint64_t{0};
    tx.Finish(m);
    return CommitAndRelease(std::move(m), lock);
  }
  // Sleeps a little longer after each refused attempt, with jitter, so that
  // replicas racing for the same revision do not keep colliding.
  static void BackOff(int attempt);
  // Appends `m` under mu_ (held through `lock`), releases mu_, then waits for
  // the mutation to be durable. (The analysis cannot follow a lock released
  // through a reference.)
  absl::StatusOr<uint64_t> CommitAndRelease(Mutation m, ReleasableMutexLock& lock)
      ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // Drops expired keys from the project's active list and returns how many remain.
  static int PruneActiveKeys(internal::ProjectRecord& project, absl::Time now);
  // Takes a revoked or deleted key off its project's active list, as part of `m`.
  absl::Status ReleaseActiveKey(const v1::Key& key, Transaction& tx, Mutation& m) const;

  // A change to one project's settings as one mutation: `change` edits the
  // project read through the mutation and fills the audit record (and the
  // event), or says kUnchanged. Returns the project as changed.
  absl::StatusOr<v1::Project> ChangeProject(
      std::string_view project_id,
      const std::function<absl::StatusOr<Built>(v1::Project&, Mutation&)>& change)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Steps the rules share, each adding its writes to `m`; the key's own row
  // is left to the caller (PutKey), except by EraseSecretKey.
  // Revokes an API key, which leaves its project's active list.
  absl::Status Revoke(internal::KeyRecord& rec, const Caller& caller, absl::Time now,
                      Transaction& tx, Mutation& m) const;
  // Gives an API key a new value, returned; the old one keeps working for
  // `grace` (none: it stops at once).
  absl::StatusOr<std::string> Rotate(internal::KeyRecord& rec, absl::Duration grace,
                                     const Caller& caller, absl::Time now, Mutation& m) const;
  // Deletes a secret key: its rows, its digest, its place on the active list.
  absl::Status EraseSecretKey(const internal::KeyRecord& rec, Transaction& tx, Mutation& m) const;

  // A new key of `kind` in `project_id`, with its value, as one mutation.
  struct NewKey {
    internal::KeyRecord record;
    std::string value;
  };
  absl::StatusOr<NewKey> MakeKey(const Caller& caller, std::string_view project_id,
                                 std::string_view name, v1::KeyKind kind, bool legacy,
                                 const google::protobuf::Timestamp* expire_time, absl::Time now,
                                 uint64_t revision, Mutation& mutation) const;
  absl::StatusOr<NewKey> GenerateKey(const Caller& caller, std::string_view project_id,
                                     std::string_view name, v1::KeyKind kind,
                                     const google::protobuf::Timestamp& expire_time)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A new principal holding `token`, written by `m`. Once `m` is committed,
  // Remember it so that its token authenticates.
  static internal::PrincipalRecord NewPrincipal(const Caller& creator, std::string_view name,
                                                v1::Role role, const std::string& token,
                                                absl::Time now, Mutation& m);
  void Remember(const internal::PrincipalRecord& rec)
      ABSL_LOCKS_EXCLUDED(reload_mu_, principals_mu_);
  // The first ADMIN with the token `make_token` gives, and the master key's
  // check value, when the store has no principal.
  absl::StatusOr<bool> Bootstrap(const std::function<absl::StatusOr<std::string>()>& make_token);
  // ADMIN principals, read for a mutation.
  absl::StatusOr<int> CountAdmins(Transaction& tx) const;
  // Calls `visit` with every row of `table`, a set guarded by the guard row
  // `guard`: at the head, or read through `tx` (with the guard as a
  // precondition). Stops at the first error `visit` returns.
  absl::Status ForEachRow(Table table, std::string_view guard, Transaction* tx,
                          const std::function<absl::Status(const Row&)>& visit) const;
  // Calls `visit` with every principal record in the store: at the head, or
  // read through `tx` (with the principals' guard row as a precondition).
  absl::Status ForEachPrincipal(const std::function<void(const internal::PrincipalRecord&)>& visit,
                                Transaction* tx = nullptr) const;

  // Every role binding in the store: at the head, or read through `tx`
  // (with the bindings' guard row as a precondition).
  absl::StatusOr<std::vector<v1::RoleBinding>> LoadRoleBindings(Transaction* tx = nullptr) const;
  // Reads every binding afresh into bindings_. Reloads take turns, each
  // reading and then replacing: the last to finish read the newest set.
  absl::Status ReloadBindings() ABSL_LOCKS_EXCLUDED(reload_mu_, principals_mu_);

  // A webhook's row, its secret unsealed.
  absl::StatusOr<WebhookTarget> OpenWebhook(const std::string& row) const;

  // Constant after construction.
  KeyStore* const store_;
  const Sealer sealer_;
  const KeyAuthorityOptions options_;

  Mutex mu_;  // serializes mutations: each reads, checks, then commits
  UsageLedger usage_;
  // The token table and the bindings change one at a time, whether by a
  // reload from the store or by this process's own change (Remember, a
  // deletion): a reload that read the store before a change can never
  // replace the table after it. Before principals_mu_.
  Mutex reload_mu_;
  mutable Mutex principals_mu_ ABSL_ACQUIRED_AFTER(reload_mu_);
  mutable std::atomic<uint64_t> failed_auth_{0};
  std::atomic<uint64_t> conflict_retries_{0};
  // Token digest -> caller.
  absl::flat_hash_map<std::string, Caller> principals_ ABSL_GUARDED_BY(principals_mu_);
  PrincipalListener principal_deleted_ ABSL_GUARDED_BY(principals_mu_);
  std::vector<v1::RoleBinding> bindings_ ABSL_GUARDED_BY(principals_mu_);
  IdTokenVerifier id_tokens_;  // set before serving
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_CORE_KEY_AUTHORITY_H_
