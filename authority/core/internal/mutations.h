// The pieces every KeyAuthority mutation is built from: rows, the records'
// metadata, audit records, and the checks the lifecycle files share.
#ifndef LATCHKEY_AUTHORITY_CORE_INTERNAL_MUTATIONS_H_
#define LATCHKEY_AUTHORITY_CORE_INTERNAL_MUTATIONS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "authority/core/access.h"
#include "authority/internal/records.pb.h"
#include "authority/store/key_store.h"

namespace latchkey::internal {

inline constexpr char kDeleteConfirmation[] = "DELETE";

absl::Status CheckKeyId(std::string_view id);
absl::Status CheckProjectId(std::string_view id);
// OK for an unset timestamp or one in the future and in range.
absl::Status CheckExpireTime(const google::protobuf::Timestamp& t, absl::Time now);

// A row holding `value`, and one that deletes `key`.
Write Put(Table t, std::string key, const google::protobuf::Message& value);
Write Erase(Table t, std::string key);
// The ListKeys index row of a key.
std::string ProjectKeysRow(std::string_view project_id, std::string_view key_id);

// The authority itself, as the actor of what it does on its own (notices,
// filling the sidecar keys).
const Caller& Latchkey();

void SetLastAction(v1::Key& key, std::string_view action, const Caller& caller, absl::Time now);
v1::AuditEvent Audit(const Caller& caller, std::string_view action, std::string_view project_id,
                     std::string_view key_id, std::string detail, absl::Time now);

// The guard row of the set of principals: written by every change to the
// set, read by every rule over the whole set (the last ADMIN, unique names).
inline constexpr char kPrincipalsGuard[] = "principals";
// The guard row holding a value sealed with the master key, written with the
// first ADMIN: a replica given another key refuses to start even before any
// API key value is stored.
inline constexpr char kMasterKeyCheck[] = "master_key";
// Marks `guard`'s set changed by the mutation taking `revision`. The value is
// unique to this change, not just to the revision: two replicas' changes built
// for one revision (one of them to be lost) must not look alike to a
// precondition (docs/design.md, "The etcd store": "Builds read a local copy").
void TouchGuard(Mutation& m, std::string_view guard, uint64_t revision);

// Writes the record as of `revision`, and its sidecar keys row beside it
// (authority/core/sidecar_keys.h), and tells sidecars every digest it now has
// (its current value and the retired ones it remembers).
void PutKey(Mutation& m, KeyRecord& record, uint64_t revision);

}  // namespace latchkey::internal

#endif  // LATCHKEY_AUTHORITY_CORE_INTERNAL_MUTATIONS_H_
