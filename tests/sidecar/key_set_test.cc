#include "sidecar/key_set.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <optional>
#include <random>
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

TEST_CASE("a key with any byte outside base62, or a wrong checksum, is MALFORMED, not UNKNOWN") {
  KeySet keys;
  TestKey k;
  REQUIRE(keys.Apply(Upsert(k.Entry())).ok());
  const std::string alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  for (int c = 0; c < 256; ++c) {
    if (alphabet.find(static_cast<char>(c)) != std::string::npos) continue;
    for (size_t at : {size_t{4}, size_t{20}, kKeyLength - 1}) {
      std::string bad = k.value;
      bad[at] = static_cast<char>(c);
      INFO("byte " << c << " at " << at);
      REQUIRE(keys.Validate(bad).verdict == v1::MALFORMED);
    }
  }
  std::string typo = k.value;
  typo[12] = typo[12] == 'a' ? 'b' : 'a';
  REQUIRE(keys.Validate(typo).verdict == v1::MALFORMED);
  REQUIRE(keys.Validate(GenerateKey(v1::API_KEY)).verdict == v1::UNKNOWN);
  REQUIRE(keys.Validate(k.value).verdict == v1::VALID);
  // The same random part under the other prefix is another key.
  const std::string other = "lks_" + k.value.substr(4, 32);
  REQUIRE(keys.Validate(other + Checksum(other)).verdict == v1::UNKNOWN);
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

TEST_CASE("a snapshot keeps every key of a large builder, and a key named twice its later entry") {
  // More keys than one of the builder's 65,536-entry slabs holds.
  std::vector<TestKey> keys_in(70000);
  const absl::Time t = absl::Now();
  KeySet::Builder builder;
  for (const TestKey& k : keys_in) REQUIRE(builder.Add(k.Entry()).ok());
  REQUIRE(builder.Add(keys_in[0].Entry(v1::KEY_STATE_REVOKED)).ok());
  REQUIRE(builder.Add(keys_in[1].Entry(v1::KEY_STATE_ACTIVE, t)).ok());
  REQUIRE(builder.Add(keys_in[69999].Entry(v1::KEY_STATE_ACTIVE, t)).ok());
  REQUIRE(builder.Add(keys_in[69999].Entry()).ok());
  KeySet keys;
  keys.Replace(builder);
  REQUIRE(keys.size() == keys_in.size());
  CHECK(keys.Validate(keys_in[0].value, t).verdict == v1::REVOKED);
  CHECK(keys.Validate(keys_in[1].value, t).verdict == v1::EXPIRED);
  CHECK(keys.Validate(keys_in[69999].value, t + absl::Hours(1)).verdict == v1::VALID);
  for (size_t i = 2; i < keys_in.size(); ++i) {
    const Validation v = keys.Validate(keys_in[i].value, t);
    if (v.verdict != v1::VALID || v.key_id() != keys_in[i].key_id ||
        v.project_id() != keys_in[i].project_id) {
      FAIL("key " << i << " of the snapshot reads back wrong");
    }
  }
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

TEST_CASE("the table grows from empty to 20,000 keys and shrinks back through events") {
  KeySet keys;
  std::vector<TestKey> all(20000);
  for (size_t i = 0; i < all.size(); i += 100) {
    v1::KeyEvent ev;  // a hundred keys per revision
    for (size_t j = i; j < i + 100; ++j) *ev.add_upserts() = all[j].Entry();
    REQUIRE(keys.Apply(ev).ok());
  }
  REQUIRE(keys.size() == all.size());
  for (const TestKey& k : all) REQUIRE(keys.Validate(k.value, absl::Now()).key_id() == k.key_id);
  for (size_t i = 0; i < all.size(); i += 2) {
    v1::KeyEvent ev;
    ev.add_removed_digests(Sha256Bytes(all[i].value));
    REQUIRE(keys.Apply(ev).ok());
  }
  REQUIRE(keys.size() == all.size() / 2);
  for (size_t i = 0; i < all.size(); ++i) {
    const v1::Verdict want = i % 2 == 0 ? v1::UNKNOWN : v1::VALID;
    REQUIRE(keys.Validate(all[i].value, absl::Now()).verdict == want);
  }
  // Removed slots are reused: adding the same number back keeps the set whole.
  std::vector<TestKey> more(10000);
  for (const TestKey& k : more) REQUIRE(keys.Apply(Upsert(k.Entry())).ok());
  REQUIRE(keys.size() == all.size());
  for (const TestKey& k : more) REQUIRE(keys.Validate(k.value, absl::Now()).verdict == v1::VALID);
}

TEST_CASE("a snapshot's table holds at most 64 bytes per key") {
  KeySet::Builder builder;
  for (int p = 0; p < 2000; ++p) {
    const std::string project = GenerateProjectId();
    for (int k = 0; k < 50; ++k) {
      v1::KeyEntry e = TestKey().Entry();
      e.set_project_id(project);
      REQUIRE(builder.Add(e).ok());
    }
  }
  KeySet keys;
  keys.Replace(builder);
  REQUIRE(keys.size() == 100000);
  CHECK(keys.MemoryBytes() <= 64 * keys.size());
}

TEST_CASE("records spell out every key and rebuild the same set") {
  KeySet keys;
  const absl::Time t = absl::FromUnixSeconds(1900000000);
  TestKey a, b, c;
  REQUIRE(keys.Apply(Upsert(a.Entry())).ok());
  REQUIRE(keys.Apply(Upsert(b.Entry(v1::KEY_STATE_REVOKED))).ok());
  REQUIRE(keys.Apply(Upsert(c.Entry(v1::KEY_STATE_ACTIVE, t))).ok());
  v1::KeyEvent off;
  off.add_project_access()->set_project_id(a.project_id);
  REQUIRE(keys.Apply(off).ok());

  KeySet::Builder builder;
  for (const KeySet::Record& r : keys.Records()) REQUIRE(builder.Add(r).ok());
  for (const std::string& p : keys.DisabledProjects()) REQUIRE(builder.AddDisabledProject(p).ok());
  KeySet again;
  again.Replace(builder);
  REQUIRE(again.Dump() == keys.Dump());
  REQUIRE(again.Dump().size() == 3);
  REQUIRE(again.DisabledProjects() == std::vector<std::string>{a.project_id});
  REQUIRE(again.Validate(c.value, t - absl::Seconds(1)).verdict == v1::VALID);
  REQUIRE(again.Validate(c.value, t).verdict == v1::EXPIRED);

  KeySet::Record bad = keys.Records().front();
  bad.key_id[3] = '-';
  REQUIRE(absl::IsInvalidArgument(KeySet::Builder().Add(bad)));
}

TEST_CASE("an expiry set by one revision and cleared by the next is gone") {
  KeySet keys;
  TestKey k;
  const absl::Time t = absl::Now();
  REQUIRE(keys.Apply(Upsert(k.Entry(v1::KEY_STATE_ACTIVE, t))).ok());
  REQUIRE(keys.Validate(k.value, t).verdict == v1::EXPIRED);
  REQUIRE(keys.Validate(k.value).verdict == v1::EXPIRED);  // by the clock, read when needed
  REQUIRE(keys.Apply(Upsert(k.Entry(v1::KEY_STATE_ACTIVE, t + absl::Hours(1)))).ok());
  REQUIRE(keys.Validate(k.value).verdict == v1::VALID);
  REQUIRE(keys.Apply(Upsert(k.Entry())).ok());
  REQUIRE(keys.Validate(k.value, t + absl::Hours(24 * 365)).verdict == v1::VALID);
  REQUIRE(keys.Apply(Upsert(k.Entry(v1::KEY_STATE_ACTIVE, t))).ok());
  v1::KeyEvent remove;
  remove.add_removed_digests(Sha256Bytes(k.value));
  REQUIRE(keys.Apply(remove).ok());
  REQUIRE(keys.Apply(Upsert(k.Entry())).ok());  // back, without the old expiry
  REQUIRE(keys.Validate(k.value, t + absl::Hours(1)).verdict == v1::VALID);
}

// The table against a plain map, over random revisions: upserts (new keys and
// changes of state or expiry), removals and project access. Fixed seeds, so
// a failure repeats.
TEST_CASE("random revisions give the verdicts a plain map gives") {
  const uint32_t seed = GENERATE(1u, 2u, 3u);
  std::mt19937 rng(seed);
  const absl::Time now = absl::FromUnixSeconds(1800000000);
  std::vector<TestKey> pool(600);
  std::vector<std::string> projects(12);
  for (std::string& p : projects) p = GenerateProjectId();
  for (size_t i = 0; i < pool.size(); ++i) pool[i].project_id = projects[i % projects.size()];

  struct Want {
    v1::KeyState state;
    int64_t expire_s;  // 0: never
  };
  std::map<size_t, Want> model;
  std::map<std::string, bool> disabled;
  KeySet keys;
  for (int revision = 0; revision < 3000; ++revision) {
    v1::KeyEvent ev;
    std::map<size_t, std::optional<Want>> change;  // the last word on each key wins
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int j = 0; j < n; ++j) {
      const size_t i = rng() % pool.size();
      if (rng() % 4 == 0) {
        change[i] = std::nullopt;
      } else {
        const Want w{rng() % 3 == 0 ? v1::KEY_STATE_REVOKED : v1::KEY_STATE_ACTIVE,
                     rng() % 3 == 0 ? 1800000000 + static_cast<int64_t>(rng() % 3) - 1 : 0};
        change[i] = w;
      }
    }
    for (const auto& [i, w] : change) {
      if (!w) {
        ev.add_removed_digests(Sha256Bytes(pool[i].value));
        model.erase(i);
        continue;
      }
      const std::optional<absl::Time> expire =
          w->expire_s ? std::optional(absl::FromUnixSeconds(w->expire_s)) : std::nullopt;
      *ev.add_upserts() = pool[i].Entry(w->state, expire);
      model[i] = *w;
    }
    if (rng() % 10 == 0) {
      const std::string& p = projects[rng() % projects.size()];
      const bool enabled = rng() % 2 == 0;
      auto* a = ev.add_project_access();
      a->set_project_id(p);
      a->set_enabled(enabled);
      disabled[p] = !enabled;
    }
    REQUIRE(keys.Apply(ev).ok());
    if (revision % 100 != 99) continue;
    REQUIRE(keys.size() == model.size());
    for (size_t i = 0; i < pool.size(); ++i) {
      v1::Verdict want = v1::UNKNOWN;
      if (auto it = model.find(i); it != model.end()) {
        const Want& w = it->second;
        want = w.state == v1::KEY_STATE_REVOKED                            ? v1::REVOKED
               : w.expire_s != 0 && w.expire_s <= absl::ToUnixSeconds(now) ? v1::EXPIRED
               : disabled[pool[i].project_id]                              ? v1::PROJECT_DISABLED
                                                                           : v1::VALID;
      }
      INFO("seed " << seed << ", revision " << revision << ", key " << i);
      REQUIRE(keys.Validate(pool[i].value, now).verdict == want);
    }
  }
}

// Run under ThreadSanitizer in CI (ctest label "concurrency").
TEST_CASE("validations stay correct while the table grows and expiries and access change",
          "[concurrency]") {
  KeySet keys;
  std::vector<TestKey> stable(100);
  for (const TestKey& k : stable) REQUIRE(keys.Apply(Upsert(k.Entry())).ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> checks{0}, wrong{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      for (size_t i = t; !stop; i = (i + 3) % stable.size()) {
        if (keys.Validate(stable[i].value, absl::Now()).verdict != v1::VALID) ++wrong;
        ++checks;
      }
    });
  }
  // Growth from 100 to 5,100 keys (several rebuilds), with expiries and
  // another project's access changing on the way.
  const std::string other = GenerateProjectId();
  for (int i = 0; i < 5000; ++i) {
    TestKey k;
    k.project_id = other;
    v1::KeyEvent ev;
    *ev.add_upserts() =
        k.Entry(v1::KEY_STATE_ACTIVE, i % 3 == 0 ? std::optional(absl::Now()) : std::nullopt);
    auto* a = ev.add_project_access();
    a->set_project_id(other);
    a->set_enabled(i % 2 == 0);
    REQUIRE(keys.Apply(ev).ok());
  }
  stop = true;
  for (std::thread& r : readers) r.join();
  REQUIRE(keys.size() == 5100);
  REQUIRE(checks > 0);
  REQUIRE(wrong == 0);
}

}  // namespace
}  // namespace latchkey
