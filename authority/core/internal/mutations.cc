#include "authority/core/internal/mutations.h"

#include "authority/core/internal/requests.h"
#include "authority/core/sidecar_keys.h"
#include "common/key_format.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace latchkey::internal {

absl::Status CheckKeyId(std::string_view id) {
  return CheckId(id, kKeyIdPrefix, kKeyIdRandomChars, "key_id");
}

absl::Status CheckProjectId(std::string_view id) {
  return CheckId(id, kProjectIdPrefix, kProjectIdRandomChars, "project_id");
}

absl::Status CheckExpireTime(const google::protobuf::Timestamp& t, absl::Time now) {
  if (t.seconds() == 0 && t.nanos() == 0) return absl::OkStatus();  // unset
  if (!IsValidTimestamp(t)) {
    return absl::InvalidArgumentError("expire_time is not a valid timestamp");
  }
  if (FromProto(t) <= now) return absl::InvalidArgumentError("expire_time must be in the future");
  return absl::OkStatus();
}

Write Put(Table t, std::string key, const google::protobuf::Message& value) {
  return Write{t, std::move(key), value.SerializeAsString()};
}

Write Erase(Table t, std::string key) { return Write{t, std::move(key), std::nullopt}; }

std::string ProjectKeysRow(std::string_view project_id, std::string_view key_id) {
  return std::string(project_id) + std::string(key_id);
}

void SetLastAction(v1::Key& key, std::string_view action, const Caller& caller, absl::Time now) {
  v1::KeyAction* last = key.mutable_last_action();
  last->set_action(std::string(action));
  last->set_actor(caller.name);
  last->set_actor_id(caller.principal_id);
  *last->mutable_time() = ToProto(now);
}

v1::AuditEvent Audit(const Caller& caller, std::string_view action, std::string_view project_id,
                     std::string_view key_id, std::string detail, absl::Time now) {
  v1::AuditEvent e;
  *e.mutable_time() = ToProto(now);
  e.set_actor(caller.name);
  e.set_actor_id(caller.principal_id);
  e.set_action(std::string(action));
  e.set_project_id(std::string(project_id));
  e.set_key_id(std::string(key_id));
  e.set_detail(std::move(detail));
  return e;
}

const Caller& Latchkey() {
  static const Caller* const caller = new Caller{"", "latchkey", v1::ROLE_ADMIN};
  return *caller;
}

void TouchGuard(Mutation& m, std::string_view guard, uint64_t revision) {
  m.writes.push_back(
      Write{Table::kGuards, std::string(guard), StrCat(revision, " ", RandomBase62(8))});
}

void PutKey(Mutation& m, KeyRecord& record, uint64_t revision) {
  record.mutable_key()->set_revision(revision);
  m.writes.push_back(Put(Table::kKeys, record.key().key_id(), record));
  std::vector<v1::KeyEntry> entries = SidecarEntries(record);
  m.writes.push_back(Write{Table::kSidecarKeys, record.key().key_id(), SidecarKeysRow(entries)});
  for (v1::KeyEntry& entry : entries) *m.event.add_upserts() = std::move(entry);
}

}  // namespace latchkey::internal
