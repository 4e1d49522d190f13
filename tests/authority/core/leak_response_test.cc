// Leak response and usage insight in the lifecycle core: finding a key from
// its value, rejected traffic per key and per sidecar, unused keys, and
// following the audit log.
#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include "authority/core/key_authority.h"
#include "common/crypto.h"
#include "common/key_format.h"
#include "common/time_util.h"
#include "tests/testing/authority_fixture.h"

namespace latchkey {
namespace {

using testing::AuthorityFixture;

const Caller kSidecar{"prn_s", "sidecars", v1::ROLE_SIDECAR};

absl::StatusOr<v1::Key> Find(AuthorityFixture& f, const std::string& value,
                             const Caller* caller = nullptr) {
  v1::FindKeyRequest req;
  req.set_value(value);
  return f.authority().FindKey(caller ? *caller : f.manager(), req);
}

void Report(AuthorityFixture& f, const std::string& sidecar_id, const std::string& key_id,
            uint64_t valid, uint64_t rejected, absl::Time when = absl::Now()) {
  v1::ReportUsageRequest report;
  report.set_sidecar_id(sidecar_id);
  v1::KeyUsage* u = report.add_usage();
  u->set_key_id(key_id);
  u->set_count(valid);
  *u->mutable_last_used_time() = ToProto(when);
  u->set_rejected_count(rejected);
  *u->mutable_last_rejected_time() = ToProto(when);
  REQUIRE(f.authority().RecordUsage(kSidecar, report).ok());
}

std::vector<v1::AuditEvent> GlobalAudit(AuthorityFixture& f) {
  v1::ListAuditEventsRequest req;
  req.set_page_size(1000);
  absl::StatusOr<v1::ListAuditEventsResponse> resp = f.authority().ListAuditEvents(f.admin(), req);
  REQUIRE(resp.ok());
  return {resp->events().begin(), resp->events().end()};
}

TEST_CASE("FindKey names the key a current API or secret key value belongs to") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const v1::GenerateApiKeyResponse api = *f.GenerateApiKey(project, "ios app");
  const v1::GenerateSecretKeyResponse secret = *f.GenerateSecretKey(project, "exports");

  absl::StatusOr<v1::Key> found = Find(f, api.api_key());
  REQUIRE(found.ok());
  REQUIRE(found->key_id() == api.key().key_id());
  REQUIRE(found->project_id() == project);
  REQUIRE(found->kind() == v1::API_KEY);
  REQUIRE(found->value_match().current());
  found = Find(f, secret.secret_key());
  REQUIRE(found.ok());
  REQUIRE(found->key_id() == secret.key().key_id());
  REQUIRE(found->kind() == v1::SECRET_KEY);
}

TEST_CASE("FindKey recognises values retired by rotation and says until when they work") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const v1::GenerateApiKeyResponse api = *f.GenerateApiKey(project);
  v1::RotateApiKeyRequest rotate;
  rotate.set_key_id(api.key().key_id());
  *rotate.mutable_grace_period() = ToProto(absl::Hours(1));
  const v1::RotateApiKeyResponse graced = *f.authority().RotateApiKey(f.manager(), rotate);
  rotate.clear_grace_period();
  const v1::RotateApiKeyResponse abrupt = *f.authority().RotateApiKey(f.manager(), rotate);

  absl::StatusOr<v1::Key> first = Find(f, api.api_key());  // retired with an hour of grace
  REQUIRE(first.ok());
  REQUIRE_FALSE(first->value_match().current());
  REQUIRE(first->value_match().valid_until().seconds() == graced.previous_valid_until().seconds());
  absl::StatusOr<v1::Key> second = Find(f, graced.api_key());  // retired at once
  REQUIRE(second.ok());
  REQUIRE_FALSE(second->value_match().current());
  REQUIRE_FALSE(second->value_match().has_valid_until());
  REQUIRE(Find(f, abrupt.api_key())->value_match().current());
}

TEST_CASE("FindKey is NOT_FOUND for values never issued or deleted, INVALID for malformed ones") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const v1::GenerateSecretKeyResponse secret = *f.GenerateSecretKey(project);
  v1::DeleteSecretKeyRequest del;
  del.set_key_id(secret.key().key_id());
  del.set_confirm("DELETE");
  REQUIRE(f.authority().DeleteSecretKey(f.manager(), del).ok());

  REQUIRE(absl::IsNotFound(Find(f, secret.secret_key()).status()));
  REQUIRE(absl::IsNotFound(Find(f, GenerateKey(v1::API_KEY)).status()));
  const uint64_t head = f.store().next_revision();
  std::string typo = GenerateKey(v1::API_KEY);
  typo[10] = typo[10] == 'a' ? 'b' : 'a';
  for (const std::string& bad : {std::string(""), std::string("lkp_short"), typo}) {
    absl::StatusOr<v1::Key> r = Find(f, bad);
    REQUIRE(absl::IsInvalidArgument(r.status()));
    REQUIRE(r.status().message().find(bad.empty() ? "\x01" : bad) == std::string::npos);
  }
  REQUIRE(f.store().next_revision() == head);  // refused: nothing written
}

TEST_CASE("FindKey is for MANAGER and ADMIN, and every lookup is audited without the value") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const v1::GenerateApiKeyResponse api = *f.GenerateApiKey(project);
  REQUIRE(absl::IsPermissionDenied(Find(f, api.api_key(), &f.member()).status()));
  const Caller sidecar{"prn_s", "s", v1::ROLE_SIDECAR};
  REQUIRE(absl::IsPermissionDenied(Find(f, api.api_key(), &sidecar).status()));

  const std::string stranger = GenerateKey(v1::SECRET_KEY);
  REQUIRE(Find(f, api.api_key()).ok());
  REQUIRE(absl::IsNotFound(Find(f, stranger).status()));

  const std::vector<v1::AuditEvent> audit = f.Audit(project);
  REQUIRE(audit.back().action() == "key.found");
  REQUIRE(audit.back().key_id() == api.key().key_id());
  REQUIRE(audit.back().actor() == f.manager().name);
  const std::vector<v1::AuditEvent> global = GlobalAudit(f);
  REQUIRE(global.back().action() == "key.lookup_missed");
  for (const auto& events : {audit, global}) {
    for (const v1::AuditEvent& e : events) {
      REQUIRE(e.detail().find(api.api_key()) == std::string::npos);
      REQUIRE(e.detail().find(stranger) == std::string::npos);
    }
  }
  REQUIRE(f.StoredCopiesOf(stranger).empty());
}

TEST_CASE("rejections add up per key, and a revoked key names the sidecars still sending it") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const std::string id = f.GenerateApiKey(project)->key().key_id();
  Report(f, "pod-a", id, 10, 2);  // e.g. PROJECT_DISABLED while the project was off
  v1::Key key = f.GetKey(id);
  REQUIRE(key.use_count() == 10);
  REQUIRE(key.rejected_count() == 2);
  REQUIRE(key.has_last_rejected_time());
  REQUIRE(key.rejected_since_revocation() == 0);
  REQUIRE(key.top_rejecting_sidecars().empty());

  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(id);
  REQUIRE(f.authority().RevokeApiKey(f.manager(), revoke).ok());
  for (int pod = 0; pod < 8; ++pod) Report(f, "pod-" + std::to_string(pod), id, 0, 10 * pod + 1);
  Report(f, "pod-3", id, 0, 100);
  key = f.GetKey(id);
  REQUIRE(key.rejected_count() == 2 + (1 + 11 + 21 + 31 + 41 + 51 + 61 + 71) + 100);
  REQUIRE(key.rejected_since_revocation() == key.rejected_count() - 2);
  std::vector<std::pair<std::string, uint64_t>> top;
  for (const v1::SidecarRejections& s : key.top_rejecting_sidecars()) {
    top.emplace_back(s.sidecar_id(), s.count());
  }
  REQUIRE(top == std::vector<std::pair<std::string, uint64_t>>{
                     {"pod-3", 131}, {"pod-7", 71}, {"pod-6", 61}, {"pod-5", 51}, {"pod-4", 41}});
}

TEST_CASE("a revoked key's usage stays bounded however many sidecars report") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const std::string id = f.GenerateApiKey(project)->key().key_id();
  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(id);
  REQUIRE(f.authority().RevokeApiKey(f.manager(), revoke).ok());
  for (int pod = 0; pod < 500; ++pod) Report(f, "pod-" + std::to_string(pod), id, 0, 1 + pod % 7);
  REQUIRE(f.GetKey(id).top_rejecting_sidecars_size() == 5);
  REQUIRE(f.authority().FlushUsage().ok());
  // (On etcd the store reads its rows from its watch: a moment after.)
  std::vector<UsageRow> rows;
  REQUIRE(testing::Eventually([&] {
    rows = *f.store().GetUsage(id);
    return rows.size() == 1;
  }));
  REQUIRE(rows.front().value.size() < 2048);
  REQUIRE(f.GetKey(id).top_rejecting_sidecars_size() == 5);
}

TEST_CASE("a usage time from the future is taken as the authority's now") {
  AuthorityFixture f;
  const std::string id = f.GenerateApiKey(f.CreateProject().project().project_id())->key().key_id();
  Report(f, "pod-skewed", id, 1, 1, absl::Now() + absl::Hours(24 * 365));
  const v1::Key key = f.GetKey(id);
  REQUIRE(FromProto(key.last_used_time()) <= absl::Now());
  REQUIRE(FromProto(key.last_rejected_time()) <= absl::Now());
}

TEST_CASE(
    "ListKeys with unused_for lists active keys not used within it, never-used old ones too") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const std::string legacy = f.ListKeys(project)[0].key_id();
  const std::string used = f.GenerateApiKey(project, "used")->key().key_id();
  const std::string idle = f.GenerateApiKey(project, "idle")->key().key_id();
  const std::string revoked = f.GenerateApiKey(project, "revoked")->key().key_id();
  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(revoked);
  REQUIRE(f.authority().RevokeApiKey(f.manager(), revoke).ok());
  Report(f, "pod-a", idle, 1, 0, absl::Now() - absl::Hours(48));
  Report(f, "pod-a", used, 1, 0, absl::Now());

  auto unused = [&](absl::Duration d) {
    v1::ListKeysRequest req;
    req.set_project_id(project);
    *req.mutable_unused_for() = ToProto(d);
    absl::StatusOr<v1::ListKeysResponse> resp = f.authority().ListKeys(f.member(), req);
    REQUIRE(resp.ok());
    std::set<std::string> ids;
    for (const v1::Key& k : resp->keys()) ids.insert(k.key_id());
    return ids;
  };
  REQUIRE(unused(absl::Hours(24)) == std::set<std::string>{idle});  // the rest is too new
  // A window long enough for a store round trip or two (etcd), short enough
  // that the keys made above fall out of it.
  absl::SleepFor(absl::Milliseconds(600));
  Report(f, "pod-a", used, 1, 0, absl::Now());  // used again just now; the others are idle
  REQUIRE(unused(absl::Milliseconds(500)) == std::set<std::string>{legacy, idle});

  v1::ListKeysRequest bad;
  bad.set_project_id(project);
  *bad.mutable_unused_for() = ToProto(-absl::Hours(1));
  REQUIRE(absl::IsInvalidArgument(f.authority().ListKeys(f.member(), bad).status()));
}

TEST_CASE("ListAuditEvents after_revision returns only newer events, for a follower") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const std::vector<v1::AuditEvent> before = f.Audit(project);
  REQUIRE(f.GenerateApiKey(project, "one").ok());
  REQUIRE(f.GenerateApiKey(project, "two").ok());
  v1::ListAuditEventsRequest req;
  req.set_project_id(project);
  req.set_after_revision(before.back().revision());
  absl::StatusOr<v1::ListAuditEventsResponse> newer =
      f.authority().ListAuditEvents(f.member(), req);
  REQUIRE(newer.ok());
  REQUIRE(newer->events_size() == 2);
  REQUIRE(newer->events(0).revision() > before.back().revision());
  REQUIRE(newer->events(1).detail().find("two") != std::string::npos);

  req.set_after_revision(newer->events(1).revision());
  REQUIRE(f.authority().ListAuditEvents(f.member(), req)->events().empty());
  req.set_page_token("anything");
  REQUIRE(absl::IsInvalidArgument(f.authority().ListAuditEvents(f.member(), req).status()));
}

// Reports of values found in public (GitHub secret scanning) -------------

const Caller kScanner{"", "github-secret-scanning", v1::ROLE_UNSPECIFIED};

bool Leak(AuthorityFixture& f, const std::string& value, const std::string& url) {
  absl::StatusOr<bool> issued = f.authority().ReportLeak(kScanner, {value, url, "content"});
  REQUIRE(issued.ok());
  return *issued;
}

void SetPolicy(AuthorityFixture& f, const std::string& project, v1::LeakPolicy policy) {
  v1::SetLeakPolicyRequest req;
  req.set_project_id(project);
  req.set_policy(policy);
  absl::StatusOr<v1::Project> p = f.authority().SetLeakPolicy(f.manager(), req);
  REQUIRE(p.ok());
  REQUIRE(p->leak_policy() == policy);
}

// The last event of the log: what sidecars hear of the last commit.
v1::KeyEvent LastEvent(AuthorityFixture& f) {
  absl::StatusOr<std::vector<v1::KeyEvent>> events =
      f.store().EventsAfter(f.store().head_revision() - 1, 1);
  REQUIRE(events.ok());
  REQUIRE(events->size() == 1);
  return events->front();
}

TEST_CASE("a leaked value is recorded on its key and audited with the URL, never the value") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const v1::GenerateApiKeyResponse api = *f.GenerateApiKey(project, "ios app");
  const std::string url = "https://github.com/octo/app/blob/abc/config.js#L3";

  REQUIRE(Leak(f, api.api_key(), url));
  const v1::Key key = f.GetKey(api.key().key_id());
  REQUIRE(key.state() == v1::KEY_STATE_ACTIVE);  // notify, the default, stops nothing
  REQUIRE(key.leak_url() == url);
  REQUIRE(key.has_leaked_time());
  REQUIRE(key.last_action().action() == "leaked");
  REQUIRE(key.last_action().actor() == "github-secret-scanning");
  const v1::AuditEvent last = f.Audit(project).back();
  REQUIRE(last.action() == "key.leaked");
  REQUIRE(last.key_id() == api.key().key_id());
  REQUIRE(last.detail().find(url) != std::string::npos);
  REQUIRE(last.detail().find("notify") != std::string::npos);
  REQUIRE(last.detail().find(api.api_key()) == std::string::npos);
  REQUIRE(f.StoredCopiesOf(api.api_key()).empty());
}

TEST_CASE("a leak reported again acts once, and the same value seen elsewhere is a new finding") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const v1::GenerateSecretKeyResponse secret = *f.GenerateSecretKey(project);
  REQUIRE(Leak(f, secret.secret_key(), "https://github.com/a/b/blob/1/x.env"));
  const uint64_t head = f.store().head_revision();

  REQUIRE(Leak(f, secret.secret_key(), "https://github.com/a/b/blob/1/x.env"));  // a retry
  REQUIRE(f.store().head_revision() == head);
  REQUIRE(Leak(f, secret.secret_key(), "https://gist.github.com/c/d"));
  REQUIRE(f.store().head_revision() == head + 1);
  REQUIRE(f.GetKey(secret.key().key_id()).leak_url() == "https://gist.github.com/c/d");
}

TEST_CASE("a value latchkey never issued is not latchkey's and changes nothing") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const v1::GenerateApiKeyResponse api = *f.GenerateApiKey(project);
  const uint64_t head = f.store().head_revision();

  REQUIRE_FALSE(Leak(f, GenerateKey(v1::API_KEY), "https://github.com/x/y"));
  REQUIRE_FALSE(Leak(f, GenerateKey(v1::SECRET_KEY), "https://github.com/x/y"));
  std::string typo = api.api_key();
  typo.back() = typo.back() == 'a' ? 'b' : 'a';  // fails the checksum: no lookup
  REQUIRE_FALSE(Leak(f, typo, "https://github.com/x/y"));
  REQUIRE_FALSE(Leak(f, "lkp_short", "https://github.com/x/y"));
  REQUIRE(f.store().head_revision() == head);
  REQUIRE_FALSE(f.GetKey(api.key().key_id()).has_leaked_time());
}

TEST_CASE("a finding whose URL or source is not short UTF-8 text is refused and changes nothing") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const v1::GenerateApiKeyResponse api = *f.GenerateApiKey(project);
  const uint64_t head = f.store().head_revision();
  const std::string long_url = "https://github.com/" + std::string(2100, 'a');
  for (const KeyAuthority::LeakFinding& bad : {
           KeyAuthority::LeakFinding{api.api_key(), long_url, "content"},
           // cut inside a two-byte character, as truncating would have
           KeyAuthority::LeakFinding{api.api_key(), "https://github.com/\xc3", "content"},
           KeyAuthority::LeakFinding{api.api_key(), "https://github.com/a\nb", "content"},
           KeyAuthority::LeakFinding{api.api_key(), "https://github.com/a", "con\x01tent"},
       }) {
    REQUIRE(absl::IsInvalidArgument(f.authority().ReportLeak(kScanner, bad).status()));
  }
  REQUIRE(f.store().head_revision() == head);
  REQUIRE(Leak(f, api.api_key(), "https://github.com/é/" + std::string(2000, 'a')));
}

TEST_CASE("under the revoke policy a leaked API key is revoked and sidecars hear it at once") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const v1::GenerateApiKeyResponse api = *f.GenerateApiKey(project);
  SetPolicy(f, project, v1::LEAK_POLICY_REVOKE);

  REQUIRE(Leak(f, api.api_key(), "https://github.com/x/y"));
  const v1::Key key = f.GetKey(api.key().key_id());
  REQUIRE(key.state() == v1::KEY_STATE_REVOKED);
  REQUIRE(key.last_action().action() == "revoked");
  REQUIRE(key.leak_url() == "https://github.com/x/y");
  const v1::KeyEvent event = LastEvent(f);
  REQUIRE(event.upserts_size() == 1);
  REQUIRE(event.upserts(0).digest() == Sha256Bytes(api.api_key()));
  REQUIRE(event.upserts(0).state() == v1::KEY_STATE_REVOKED);
  REQUIRE(f.Audit(project).back().detail().find("revoked (leak policy revoke)") !=
          std::string::npos);
  // The revoked key no longer counts against the project's limit.
  v1::GetProjectRequest get;
  get.set_project_id(project);
  REQUIRE(f.authority().GetProject(f.member(), get)->leak_policy() == v1::LEAK_POLICY_REVOKE);
}

TEST_CASE("under the revoke policy the legacy key is rotated with no grace and a secret deleted") {
  AuthorityFixture f;
  const v1::CreateProjectResponse created = f.CreateProject();
  const std::string project = created.project().project_id();
  const v1::GenerateSecretKeyResponse secret = *f.GenerateSecretKey(project);
  SetPolicy(f, project, v1::LEAK_POLICY_REVOKE);

  REQUIRE(Leak(f, created.legacy_api_key(), "https://github.com/x/legacy"));
  v1::Key legacy = f.GetKey(created.legacy_key().key_id());
  REQUIRE(legacy.state() == v1::KEY_STATE_ACTIVE);  // never revoked
  REQUIRE(legacy.last_action().action() == "rotated");
  REQUIRE(legacy.hint() != created.legacy_key().hint());
  absl::StatusOr<v1::Key> old = Find(f, created.legacy_api_key());
  REQUIRE(old.ok());
  REQUIRE_FALSE(old->value_match().current());
  REQUIRE_FALSE(old->value_match().has_valid_until());  // stopped at once

  REQUIRE(Leak(f, secret.secret_key(), "https://github.com/x/secret"));
  v1::GetKeyRequest get;
  get.set_key_id(secret.key().key_id());
  REQUIRE(absl::IsNotFound(f.authority().GetKey(f.member(), get).status()));
  REQUIRE(LastEvent(f).removed_digests(0) == Sha256Bytes(secret.secret_key()));
  REQUIRE(f.Audit(project).back().action() == "key.leaked");
  REQUIRE(f.Audit(project).back().detail().find("deleted") != std::string::npos);
  // Still latchkey's when GitHub sends it again, or finds it elsewhere.
  const uint64_t head = f.store().head_revision();
  REQUIRE(Leak(f, secret.secret_key(), "https://github.com/x/secret"));
  REQUIRE(f.store().head_revision() == head);
  REQUIRE(Leak(f, secret.secret_key(), "https://github.com/x/elsewhere"));
  REQUIRE(f.Audit(project).back().detail().find("deleted before") != std::string::npos);
}

TEST_CASE(
    "under the revoke policy a leaked retired value loses its grace, and the current one works") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  const v1::GenerateApiKeyResponse api = *f.GenerateApiKey(project);
  v1::RotateApiKeyRequest rotate;
  rotate.set_key_id(api.key().key_id());
  *rotate.mutable_grace_period() = ToProto(absl::Hours(1));
  const v1::RotateApiKeyResponse rotated = *f.authority().RotateApiKey(f.manager(), rotate);
  SetPolicy(f, project, v1::LEAK_POLICY_REVOKE);

  REQUIRE(Leak(f, api.api_key(), "https://github.com/x/old"));
  bool old_revoked = false;
  const v1::KeyEvent event = LastEvent(f);
  for (const v1::KeyEntry& e : event.upserts()) {
    if (e.digest() == Sha256Bytes(api.api_key())) old_revoked = e.state() == v1::KEY_STATE_REVOKED;
  }
  REQUIRE(old_revoked);
  REQUIRE(f.Audit(project).back().detail().find("grace period ended") != std::string::npos);
  REQUIRE(f.GetKey(api.key().key_id()).state() == v1::KEY_STATE_ACTIVE);
  REQUIRE(Find(f, rotated.api_key())->value_match().current());
  REQUIRE_FALSE(Find(f, api.api_key())->value_match().has_valid_until());
}

TEST_CASE("SetLeakPolicy takes NOTIFY or REVOKE from MANAGER or ADMIN, and is audited") {
  AuthorityFixture f;
  const std::string project = f.CreateProject().project().project_id();
  v1::SetLeakPolicyRequest req;
  req.set_project_id(project);
  req.set_policy(v1::LEAK_POLICY_REVOKE);
  REQUIRE(absl::IsPermissionDenied(f.authority().SetLeakPolicy(f.member(), req).status()));
  req.set_policy(v1::LEAK_POLICY_UNSPECIFIED);
  REQUIRE(absl::IsInvalidArgument(f.authority().SetLeakPolicy(f.manager(), req).status()));
  req.set_policy(static_cast<v1::LeakPolicy>(7));
  REQUIRE(absl::IsInvalidArgument(f.authority().SetLeakPolicy(f.manager(), req).status()));
  req.set_project_id(GenerateProjectId());
  req.set_policy(v1::LEAK_POLICY_REVOKE);
  REQUIRE(absl::IsNotFound(f.authority().SetLeakPolicy(f.manager(), req).status()));

  const uint64_t head = f.store().head_revision();
  SetPolicy(f, project, v1::LEAK_POLICY_NOTIFY);  // already so: nothing to commit
  REQUIRE(f.store().head_revision() == head);
  SetPolicy(f, project, v1::LEAK_POLICY_REVOKE);
  REQUIRE(f.Audit(project).back().action() == "project.leak_policy_set");
  REQUIRE(f.Audit(project).back().detail() == "policy=revoke");
}

}  // namespace
}  // namespace latchkey
