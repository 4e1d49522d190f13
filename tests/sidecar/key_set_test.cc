#include "sidecar/key_set.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <optional>
#include <thread>

#include "absl/time/clock.h"
#include "common/key_format.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

struct TestKey {
  std::string value = GenerateKey(v1::API_KEY);
  std::string key_id = GenerateKeyId();
  std::string project_id = GenerateProjectId();

  v1::KeyEntry Entry(v1::KeyState state = v1::KEY_STATE_ACTIVE,
                     std::optional<absl::Time> expire = std::nullopt) const {
    v1::KeyEntry e;
    e.set_digest(Sha256Bytes(value));
    e.set_key_id(key_id);
    e.set_project_id(project_id);
    e.set_kind(ParseKey(value));
    e.set_state(state);
    if (expire) *e.mutable_expire_time() = ToProto(*expire);
    return e;
  }
};

v1::KeyEvent Upsert(const v1::KeyEntry& e) {
  v1::KeyEvent ev;
  *ev.add_upserts() = e;
  return ev;
}

TEST_CASE("each verdict comes from the right state") {
  KeySet keys;
  const absl::Time now = absl::Now();
  TestKey valid, revoked, expired, disabled, future;
  REQUIRE(keys.Apply(Upsert(valid.Entry())).ok());
  REQUIRE(keys.Apply(Upsert(revoked.Entry(v1::KEY_STATE_REVOKED))).ok());
  REQUIRE(keys.Apply(Upsert(expired.Entry(v1::KEY_STATE_ACTIVE, now - absl::Seconds(1)))).ok());
  REQUIRE(keys.Apply(Upsert(future.Entry(v1::KEY_STATE_ACTIVE, now + absl::Hours(1)))).ok());
  REQUIRE(keys.Apply(Upsert(disabled.Entry())).ok());
  v1::KeyEvent off;
  off.add_project_access()->set_project_id(disabled.project_id);
  REQUIRE(keys.Apply(off).ok());

  const Validation v = keys.Validate(valid.value, now);
  REQUIRE(v.verdict == v1::VALID);
  REQUIRE(v.key_id() == valid.key_id);
  REQUIRE(v.project_id() == valid.project_id);
  REQUIRE(std::string(v.key_id_chars().data(), 20) == valid.key_id);
  REQUIRE(v.kind == v1::API_KEY);
  REQUIRE(keys.Validate(revoked.value, now).verdict == v1::REVOKED);
  REQUIRE(keys.Validate(expired.value, now).verdict == v1::EXPIRED);
  REQUIRE(keys.Validate(future.value, now).verdict == v1::VALID);
  REQUIRE(keys.Validate(disabled.value, now).verdict == v1::PROJECT_DISABLED);
  REQUIRE(keys.Validate(GenerateKey(v1::SECRET_KEY), now).verdict == v1::UNKNOWN);
  REQUIRE(keys.Validate("lkp_nope", now).verdict == v1::MALFORMED);
  REQUIRE(keys.Validate("", now).verdict == v1::MALFORMED);
  REQUIRE(keys.Validate(std::string(10240, 'x'), now).verdict == v1::MALFORMED);
  // A revoked key says REVOKED even when also expired and disabled.
  REQUIRE(keys.Apply(Upsert(disabled.Entry(v1::KEY_STATE_REVOKED, now - absl::Seconds(1)))).ok());
  REQUIRE(keys.Validate(disabled.value, now).verdict == v1::REVOKED);
}

TEST_CASE("an expired key expires by the sidecar's own clock") {
  KeySet keys;
  TestKey k;
  const absl::Time t = absl::Now();
  REQUIRE(keys.Apply(Upsert(k.Entry(v1::KEY_STATE_ACTIVE, t + absl::Seconds(10)))).ok());
  REQUIRE(keys.Validate(k.value, t + absl::Seconds(9)).verdict == v1::VALID);
  REQUIRE(keys.Validate(k.value, t + absl::Seconds(10)).verdict == v1::EXPIRED);
}

TEST_CASE("events remove digests and re-enable projects") {
  KeySet keys;
  TestKey k;
  REQUIRE(keys.Apply(Upsert(k.Entry())).ok());
  v1::KeyEvent off;
  off.add_project_access()->set_project_id(k.project_id);
  REQUIRE(keys.Apply(off).ok());
  REQUIRE(keys.DisabledProjects() == std::vector<std::string>{k.project_id});
  off.mutable_project_access(0)->set_enabled(true);
  REQUIRE(keys.Apply(off).ok());
  REQUIRE(keys.Validate(k.value, absl::Now()).verdict == v1::VALID);
  v1::KeyEvent remove;
  remove.add_removed_digests(Sha256Bytes(k.value));
  REQUIRE(keys.Apply(remove).ok());
  REQUIRE(keys.Validate(k.value, absl::Now()).verdict == v1::UNKNOWN);
  REQUIRE(keys.size() == 0);
}

TEST_CASE("an event with any malformed part is refused whole and changes nothing") {
  KeySet keys;
  TestKey kept, added;
  REQUIRE(keys.Apply(Upsert(kept.Entry())).ok());
  const int broken = GENERATE(0, 1, 2, 3);
  v1::KeyEvent ev;
  *ev.add_upserts() = added.Entry();  // well formed, but in a broken event
  ev.add_removed_digests(std::string(kept.Entry().digest()));
  ev.add_project_access()->set_project_id(kept.Entry().project_id());  // disables it
  switch (broken) {
    case 0:
      ev.mutable_upserts(0)->set_digest("short");
      break;
    case 1:
      ev.mutable_upserts(0)->set_key_id("key_../../x");
      break;
    case 2:
      ev.add_removed_digests("not a digest");
      break;
    case 3:
      ev.add_project_access()->set_project_id("prj_../x");
      break;
  }
  INFO("broken part " << broken);
  REQUIRE(absl::IsInvalidArgument(keys.Apply(ev)));
  CHECK(keys.size() == 1);
  CHECK(keys.Validate(kept.value, absl::Now()).verdict == v1::VALID);
  CHECK(keys.Validate(added.value, absl::Now()).verdict == v1::UNKNOWN);
}

TEST_CASE("a snapshot replaces the whole set, disabled projects included") {
  KeySet keys;
  TestKey old_key, new_key;
  REQUIRE(keys.Apply(Upsert(old_key.Entry())).ok());
  v1::KeyEvent off;
  off.add_project_access()->set_project_id(old_key.project_id);
  REQUIRE(keys.Apply(off).ok());
  KeySet::Builder builder;
  REQUIRE(builder.Add(new_key.Entry()).ok());
  REQUIRE(builder.AddDisabledProject(new_key.project_id).ok());
  keys.Replace(builder);
  REQUIRE(builder.size() == 0);
  REQUIRE(keys.size() == 1);
  REQUIRE(keys.Validate(old_key.value, absl::Now()).verdict == v1::UNKNOWN);
  REQUIRE(keys.Validate(new_key.value, absl::Now()).verdict == v1::PROJECT_DISABLED);
  REQUIRE(keys.DisabledProjects() == std::vector<std::string>{new_key.project_id});
}

// Run under ThreadSanitizer in CI (ctest label "concurrency").
TEST_CASE("validations from many threads stay correct while snapshots swap and events apply",
          "[concurrency]") {
  KeySet keys;
  std::vector<TestKey> stable(200);
  KeySet::Builder initial;
  for (const TestKey& k : stable) REQUIRE(initial.Add(k.Entry()).ok());
  keys.Replace(initial);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> checks{0}, wrong{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      for (size_t i = t; !stop; i = (i + 7) % stable.size()) {
        // Every snapshot and event below keeps the stable keys VALID.
        if (keys.Validate(stable[i].value, absl::Now()).verdict != v1::VALID) ++wrong;
        ++checks;
      }
    });
  }
  for (int round = 0; round < 50; ++round) {
    KeySet::Builder next;
    for (const TestKey& k : stable) REQUIRE(next.Add(k.Entry()).ok());
    for (int i = 0; i < 100; ++i) REQUIRE(next.Add(TestKey().Entry()).ok());
    keys.Replace(next);
    for (int i = 0; i < 20; ++i) {
      TestKey churn;
      REQUIRE(keys.Apply(Upsert(churn.Entry())).ok());
      v1::KeyEvent remove;
      remove.add_removed_digests(Sha256Bytes(churn.value));
      REQUIRE(keys.Apply(remove).ok());
    }
  }
  stop = true;
  for (std::thread& r : readers) r.join();
  REQUIRE(checks > 0);
  REQUIRE(wrong == 0);
}

}  // namespace
}  // namespace latchkey
