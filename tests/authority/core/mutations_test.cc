// authority/core/internal/mutations.h: the pieces every mutation is built from.
#include "authority/core/internal/mutations.h"

#include <catch2/catch.hpp>

#include "common/key_format.h"
#include "common/time_util.h"

namespace latchkey::internal {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

google::protobuf::Timestamp At(int64_t seconds, int32_t nanos = 0) {
  google::protobuf::Timestamp t;
  t.set_seconds(seconds);
  t.set_nanos(nanos);
  return t;
}

TEST_CASE("an expire time must be unset, or a valid time after now") {
  REQUIRE(CheckExpireTime(google::protobuf::Timestamp(), kNow).ok());  // unset: never expires
  REQUIRE(CheckExpireTime(ToProto(kNow + absl::Seconds(1)), kNow).ok());
  for (const google::protobuf::Timestamp& past :
       {ToProto(kNow), ToProto(kNow - absl::Seconds(1)), At(1)}) {
    absl::Status s = CheckExpireTime(past, kNow);
    REQUIRE(absl::IsInvalidArgument(s));
    REQUIRE(std::string(s.message()) == "expire_time must be in the future");
  }
  // Beyond protobuf's range (year 9999), or nanos out of range.
  for (const google::protobuf::Timestamp& invalid :
       {At(253402300800), At(1'900'000'000, -1), At(1'900'000'000, 1'000'000'000)}) {
    absl::Status s = CheckExpireTime(invalid, kNow);
    REQUIRE(absl::IsInvalidArgument(s));
    REQUIRE(std::string(s.message()) == "expire_time is not a valid timestamp");
  }
}

TEST_CASE("key and project ids are checked for their prefix and length") {
  REQUIRE(CheckKeyId(GenerateKeyId()).ok());
  REQUIRE(CheckProjectId(GenerateProjectId()).ok());
  REQUIRE(absl::IsInvalidArgument(CheckKeyId(GenerateProjectId())));
  REQUIRE(absl::IsInvalidArgument(CheckProjectId(GenerateKeyId())));
  REQUIRE(absl::IsInvalidArgument(CheckKeyId("")));
  REQUIRE(absl::IsInvalidArgument(CheckKeyId(GenerateKeyId() + "x")));
  REQUIRE(absl::IsInvalidArgument(CheckKeyId(GenerateKeyId().substr(1))));
}

TEST_CASE("a guard's value is unique to each change, not only to its revision") {
  Mutation a, b;
  TouchGuard(a, "principals", 7);
  TouchGuard(b, "principals", 7);
  REQUIRE(a.writes.size() == 1);
  REQUIRE(a.writes[0].table == Table::kGuards);
  REQUIRE(a.writes[0].key == "principals");
  REQUIRE(a.writes[0].value->rfind("7 ", 0) == 0);
  REQUIRE(b.writes[0].value->rfind("7 ", 0) == 0);
  // Two replicas' changes built for one revision must not look alike.
  REQUIRE(*a.writes[0].value != *b.writes[0].value);
}

TEST_CASE("audit records and a key's last action name the caller and the time") {
  Caller caller;
  caller.principal_id = "oidc:https://idp.example#alice";
  caller.name = "alice@example.com";
  const v1::AuditEvent e = Audit(caller, "key.revoked", "prj_1", "key_1", "why", kNow);
  REQUIRE(e.actor() == "alice@example.com");
  REQUIRE(e.actor_id() == "oidc:https://idp.example#alice");
  REQUIRE(e.action() == "key.revoked");
  REQUIRE(e.project_id() == "prj_1");
  REQUIRE(e.key_id() == "key_1");
  REQUIRE(e.detail() == "why");
  REQUIRE(FromProto(e.time()) == kNow);

  v1::Key key;
  SetLastAction(key, "key.rotated", caller, kNow);
  REQUIRE(key.last_action().action() == "key.rotated");
  REQUIRE(key.last_action().actor() == "alice@example.com");
  REQUIRE(key.last_action().actor_id() == "oidc:https://idp.example#alice");
  REQUIRE(FromProto(key.last_action().time()) == kNow);
}

TEST_CASE("rows: a put holds the record, an erase deletes, and the index row is project + key") {
  v1::Project project;
  project.set_project_id("prj_1");
  const Write put = Put(Table::kProjects, "prj_1", project);
  REQUIRE(put.table == Table::kProjects);
  v1::Project back;
  REQUIRE(back.ParseFromString(*put.value));
  REQUIRE(back.project_id() == "prj_1");
  REQUIRE_FALSE(Erase(Table::kKeys, "key_1").value.has_value());
  REQUIRE(ProjectKeysRow("prj_1", "key_1") == "prj_1key_1");
}

TEST_CASE("a key written as of a revision carries it, its sidecar keys row, and tells sidecars") {
  KeyRecord record;
  record.mutable_key()->set_key_id("key_1");
  record.mutable_key()->set_project_id("prj_1");
  record.mutable_key()->set_kind(v1::API_KEY);
  record.set_digest(std::string(32, 'd'));
  RetiredValue* retired = record.add_retired();  // revoked at once
  retired->set_digest(std::string(32, 'r'));
  Mutation m;
  PutKey(m, record, 12);
  REQUIRE(record.key().revision() == 12);
  REQUIRE(m.writes.size() == 2);
  REQUIRE(m.writes[0].table == Table::kKeys);
  REQUIRE(m.writes[0].key == "key_1");
  KeyRecord written;
  REQUIRE(written.ParseFromString(*m.writes[0].value));
  REQUIRE(written.key().revision() == 12);
  // The current value and the retired one, which sidecars must refuse.
  REQUIRE(m.event.upserts_size() == 2);
  REQUIRE(m.event.upserts(0).digest() == std::string(32, 'd'));
  REQUIRE(m.event.upserts(1).digest() == std::string(32, 'r'));
  REQUIRE(m.event.upserts(1).state() == v1::KEY_STATE_REVOKED);
  for (const v1::KeyEntry& e : m.event.upserts()) REQUIRE(e.key_id() == "key_1");
  // The same entries, in the row a snapshot copies (authority/core/sidecar_keys.h).
  REQUIRE(m.writes[1].table == Table::kSidecarKeys);
  REQUIRE(m.writes[1].key == "key_1");
  v1::SnapshotChunk row;
  REQUIRE(row.ParseFromString(*m.writes[1].value));
  REQUIRE(row.entries_size() == 2);
  for (int i = 0; i < 2; ++i) {
    REQUIRE(row.entries(i).SerializeAsString() == m.event.upserts(i).SerializeAsString());
  }
}

}  // namespace
}  // namespace latchkey::internal
