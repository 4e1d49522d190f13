// What only the etcd store does: replicas over one etcd sharing, leading,
// losing batches to each other and catching up after a cut, and the import
// of an embedded store. The contract every store keeps is tested in
// store_conformance_test.cc, on etcd too.
#include "authority/store/etcd/etcd_store.h"

#include <catch2/catch.hpp>
#include <functional>
#include <set>

#include "authority/core/internal/mutations.h"
#include "authority/store/etcd/internal/etcd_client.h"
#include "authority/store/etcd/internal/layout.h"
#include "common/net.h"
#include "common/strings.h"
#include "tests/authority/store/store_kinds.h"

// gRPC cannot run under our ThreadSanitizer build (Debian's Abseil is not
// instrumented; see scripts/test), so the etcd store sits out there.
#if !defined(__SANITIZE_THREAD__)
namespace latchkey {
namespace {

using testing::EtcdKind;
using testing::Put;
using testing::Read;
using testing::RocksDbKind;
using testing::UsageOnceItHas;

TEST_CASE("store: replicas over one etcd write usage as different writers, never conflicting",
          "[store]") {
  EtcdKind kind;
  auto a = kind.Open();
  auto b = kind.Open();
  const std::string wa = *a->UsageWriter(), wb = *b->UsageWriter();
  REQUIRE(wa != wb);
  const uint64_t conflicts = a->stats().conflicts + b->stats().conflicts;
  REQUIRE(a->PutUsage(wa, {{"key_1", "", "from a"}}).ok());
  REQUIRE(b->PutUsage(wb, {{"key_1", "", "from b"}}).ok());
  REQUIRE(absl::IsAborted(b->PutUsage(wa, {{"key_1", "", "b as a"}})));  // not b's
  for (const auto* store : {a.get(), b.get()}) {
    std::vector<UsageRow> rows = UsageOnceItHas(*store, "key_1", 2);
    REQUIRE(rows.size() == 2);
    std::set<std::pair<std::string, std::string>> seen;
    for (const UsageRow& r : rows) seen.emplace(r.writer, r.value);
    REQUIRE(seen == std::set<std::pair<std::string, std::string>>{{wa, "from a"}, {wb, "from b"}});
  }
  REQUIRE(a->stats().conflicts + b->stats().conflicts == conflicts);

  // a goes: its writer, rows included, is the next replica's.
  a.reset();
  auto c = kind.Open();
  REQUIRE(*c->UsageWriter() == wa);
  REQUIRE(c->PutUsage(wa, {{"key_1", "", "from c"}}).ok());
  REQUIRE(testing::Eventually([&] {
    const std::vector<UsageRow> rows = *b->GetUsage("key_1");
    for (const UsageRow& r : rows) {
      if (r.writer == wa) return r.value == "from c";
    }
    return false;
  }));
}

TEST_CASE("store: what an etcd replica shares reaches the others and leaves with it", "[store]") {
  EtcdKind kind;
  std::unique_ptr<KeyStore> a = kind.Open(), b = kind.Open();
  REQUIRE(a->replicas().Share("from a").ok());
  REQUIRE(*b->replicas().SharedByOthers() == std::vector<std::string>{"from a"});
  REQUIRE(a->replicas().SharedByOthers()->empty());  // its own is not another's
  REQUIRE(b->replicas().Share("from b").ok());
  REQUIRE(a->replicas().Share("from a, later").ok());
  REQUIRE(*b->replicas().SharedByOthers() == std::vector<std::string>{"from a, later"});
  REQUIRE(*a->replicas().SharedByOthers() == std::vector<std::string>{"from b"});
  a.reset();  // a clean shutdown takes its row along at once
  REQUIRE(b->replicas().SharedByOthers()->empty());
}

TEST_CASE("store: one etcd replica at a time holds a duty, and another takes it when it leaves",
          "[store]") {
  EtcdKind kind;
  std::unique_ptr<KeyStore> a = kind.Open(), b = kind.Open();
  REQUIRE(*a->replicas().Lead("webhooks"));
  REQUIRE_FALSE(*b->replicas().Lead("webhooks"));
  REQUIRE(*b->replicas().Lead("another duty"));  // duties are held one by one
  REQUIRE(*a->replicas().Lead("webhooks"));      // kept while asked for
  // Progress written as the duty's holder: only while it holds it.
  REQUIRE(a->PutProgress("webhook/whk_1", "from a", "webhooks").ok());
  REQUIRE(absl::IsAborted(b->PutProgress("webhook/whk_1", "from b", "webhooks")));
  REQUIRE(**b->GetProgress("webhook/whk_1") == "from a");
  a.reset();  // a clean shutdown frees it at once
  REQUIRE(*b->replicas().Lead("webhooks"));
  REQUIRE(b->PutProgress("webhook/whk_1", "from b", "webhooks").ok());
  REQUIRE(**b->GetProgress("webhook/whk_1") == "from b");
}

TEST_CASE("store: an etcd replica's batch lost to another replica is refused to each appender",
          "[store]") {
  EtcdKind kind;
  std::unique_ptr<KeyStore> a = kind.Open(), b = kind.Open();
  // Two mutations queued on A, not yet sent.
  REQUIRE(*a->Append(Put("a1", "x")) == 1);
  REQUIRE(*a->Append(Put("a2", "x")) == 2);
  REQUIRE(*a->GetLatest(Table::kProjects, "a2") == "x");  // the batch reads as written
  REQUIRE_FALSE(Read(*a, "a2").has_value());              // but is not durable yet
  // B takes revision 1 first: A's whole batch is lost, and each appender hears so.
  REQUIRE(*b->Commit(Put("b1", "y")) == 1);
  REQUIRE(absl::IsAborted(a->Sync(1)));
  REQUIRE(absl::IsAborted(a->Sync(2)));
  REQUIRE_FALSE(a->GetLatest(Table::kProjects, "a1")->has_value());
  // Built again, it commits after B's.
  REQUIRE(testing::Eventually([&] { return a->next_revision() == 2; }));
  REQUIRE(*a->Commit(Put("a1", "x")) == 2);
  REQUIRE(*Read(*b, "b1") == "y");
  REQUIRE(testing::Eventually([&] { return b->head_revision() == 2; }));
  REQUIRE(*Read(*b, "a1") == "x");
  REQUIRE_FALSE(Read(*b, "a2").has_value());
}

// The race that unique guard values close (authority/core/internal/mutations.h,
// TouchGuard): replica A builds on its own batch while that batch is still
// pending; the batch is lost to B, whose change took the same revision and
// touched the same guard. A's build read a set (a scan, not a precondition)
// that never existed, so its guard precondition must fail.
TEST_CASE("store: a build on an etcd replica's lost batch is refused though its guard looks alike",
          "[store]") {
  EtcdKind kind;
  std::unique_ptr<KeyStore> a = kind.Open(), b = kind.Open();
  auto add_member = [](const std::string& name) {
    Mutation m;
    m.writes.push_back(Write{Table::kPrincipals, name, "member"});
    internal::TouchGuard(m, internal::kPrincipalsGuard, 1);
    m.audit.set_action("test");
    return m;
  };
  REQUIRE(*a->Append(add_member("from-a")) == 1);  // queued on A, not sent
  REQUIRE(*b->Commit(add_member("from-b")) == 1);
  // Built on A's pending batch: guard first, then the set it guards.
  Transaction tx(*a);
  REQUIRE(tx.revision() == 2);
  REQUIRE(tx.Get(Table::kGuards, internal::kPrincipalsGuard)->has_value());
  absl::StatusOr<Page> members = tx.Scan(Table::kPrincipals, "", "", 10);
  // A set that will never exist: it holds A's lost row (and B's, once A's
  // watch brought it).
  REQUIRE(members->rows.front().key == "from-a");
  REQUIRE(absl::IsAborted(a->Sync(1)));
  Mutation decided = Put("decided-on-a-lost-set", "x");
  tx.Finish(decided);
  absl::StatusOr<uint64_t> committed = a->Commit(std::move(decided));
  INFO(committed.status());
  REQUIRE(absl::IsAborted(committed.status()));
  REQUIRE_FALSE(Read(*b, "decided-on-a-lost-set").has_value());
}

// A replica under `prefix` that reaches only `endpoints` of a cluster of its
// own, so that killing a member can cut it off.
std::unique_ptr<KeyStore> OpenReplica(const std::string& prefix, std::vector<std::string> endpoints,
                                      uint64_t retention = 100000) {
  EtcdStoreOptions options;
  options.endpoints = std::move(endpoints);
  options.prefix = prefix;
  options.event_retention = retention;
  absl::StatusOr<std::unique_ptr<KeyStore>> store = OpenEtcdStore(options);
  REQUIRE(store.ok());
  return *std::move(store);
}

// Runs `meanwhile` with member 0 down, then compacts etcd's history and
// brings member 0 back: a replica reaching only member 0 finds where its
// watch stopped compacted away.
void WhileMemberZeroIsDown(testing::EtcdCluster& cluster, const std::function<void()>& meanwhile) {
  cluster.Kill(0);
  REQUIRE(testing::Eventually([&] { return cluster.Leader() >= 0; }, std::chrono::seconds(30)));
  meanwhile();
  cluster.Compact(1);
  cluster.Restart(0);  // serves clients only once it has applied the compaction
}

// etcd forgets history older than its compaction (operators run it with
// --auto-compaction-retention): a replica cut off for longer cannot resume its
// watch where it stopped, and must catch up from the log and the rows.
TEST_CASE("store: an etcd replica cut off past a compaction catches up from the log and the rows",
          "[store]") {
  testing::EtcdCluster cluster(3);
  const std::string prefix = "/compacted-" + RandomBase62(8) + "/";
  std::unique_ptr<KeyStore> a = OpenReplica(prefix, {cluster.endpoint(0)});
  std::unique_ptr<KeyStore> b = OpenReplica(prefix, {cluster.endpoint(1), cluster.endpoint(2)});
  Mutex mu;
  std::vector<uint64_t> heard;
  a->SetCommitListener([&](const v1::KeyEvent& e, const v1::AuditEvent&, TableSet) {
    MutexLock lock(&mu);
    heard.push_back(e.revision());
  });
  REQUIRE(*b->Commit(Put("gone", "1")) == 1);
  REQUIRE(testing::Eventually([&] { return a->head_revision() == 1; }));

  WhileMemberZeroIsDown(cluster, [&] {  // A's only member
    REQUIRE(*b->Commit(Put("kept", "2")) == 2);
    Mutation erase;
    erase.writes.push_back(Write{Table::kProjects, "gone", std::nullopt});
    erase.audit.set_action("test");
    REQUIRE(*b->Commit(std::move(erase)) == 3);
  });

  REQUIRE(testing::Eventually([&] { return a->head_revision() == 3; }, std::chrono::seconds(30)));
  {
    MutexLock lock(&mu);
    REQUIRE(heard == std::vector<uint64_t>{1, 2, 3});  // every revision, in order
  }
  REQUIRE(**a->GetLatest(Table::kProjects, "kept") == "2");  // the copy caught up too
  REQUIRE_FALSE(a->GetLatest(Table::kProjects, "gone")->has_value());
  REQUIRE(*a->Commit(Put("after", "4")) == 4);  // and the watch goes on from there
  REQUIRE(testing::Eventually([&] { return b->head_revision() == 4; }));
}

// Past the event retention the log no longer holds what a cut-off replica
// missed: it can never publish again, and says so through its health (load
// balancers move on; docs/operations.md says to restart it).
TEST_CASE("store: an etcd replica that missed revisions the log no longer holds is not reachable",
          "[store]") {
  testing::EtcdCluster cluster(3);
  const std::string prefix = "/stranded-" + RandomBase62(8) + "/";
  std::unique_ptr<KeyStore> a = OpenReplica(prefix, {cluster.endpoint(0)}, /*retention=*/1);
  std::unique_ptr<KeyStore> b =
      OpenReplica(prefix, {cluster.endpoint(1), cluster.endpoint(2)}, /*retention=*/1);
  REQUIRE(*b->Commit(Put("one", "1")) == 1);
  REQUIRE(testing::Eventually([&] { return a->head_revision() == 1; }));
  REQUIRE(a->Reachable().ok());

  WhileMemberZeroIsDown(cluster, [&] {  // A's only member
    REQUIRE(*b->Commit(Put("two", "2")) == 2);
    REQUIRE(*b->Commit(Put("three", "3")) == 3);  // trims revision 2 from the log
  });

  absl::Status reachable;
  REQUIRE(testing::Eventually(
      [&] {
        reachable = a->Reachable();
        return absl::IsDataLoss(reachable);
      },
      std::chrono::seconds(30)));
  REQUIRE_THAT(std::string(reachable.message()), Catch::Contains("restart"));
  REQUIRE(a->head_revision() == 1);
  REQUIRE(b->Reachable().ok());
}

// Every row of every table, as "table/key=value" lines.
std::vector<std::string> AllRows(const KeyStore& store) {
  std::vector<std::string> rows;
  for (Table t : kAllTables) {
    absl::StatusOr<Page> page = store.Scan(t, "", "", 1000);
    REQUIRE(page.ok());
    for (const Row& row : page->rows) {
      rows.push_back(std::to_string(static_cast<int>(t)) + "/" + row.key + "=" + row.value);
    }
  }
  return rows;
}

std::vector<std::string> Serialized(const auto& messages) {
  std::vector<std::string> out;
  for (const auto& m : messages) out.push_back(m.SerializeAsString());
  return out;
}

TEST_CASE("store: an embedded store imported into etcd reads the same and takes the next revision",
          "[store]") {
  RocksDbKind source_kind;
  std::unique_ptr<KeyStore> source = source_kind.Open(/*retention=*/5);
  for (int i = 1; i <= 8; ++i) {
    Mutation m = Put("prj_x", "v" + std::to_string(i));  // audited under prj_x
    if (i % 2 == 0) {
      m.writes = {Write{Table::kPrincipals, "p" + std::to_string(i), "principal"},
                  Write{Table::kGuards, "principals", std::to_string(i)}};
      m.audit.clear_project_id();  // audited under no project
    }
    m.event.add_removed_digests("d" + std::to_string(i));
    REQUIRE(source->Commit(std::move(m)).ok());
  }
  REQUIRE(source->PutUsage(*source->UsageWriter(), {{"key_1", "", "usage"}}).ok());
  REQUIRE(source->PutProgress("webhook/whk_1", "cursor", "").ok());

  EtcdKind target;
  EtcdStoreOptions options;
  options.endpoints = *ParseEndpoints(testing::EtcdCluster::Shared().endpoints());
  options.prefix = target.prefix();
  options.event_retention = 5;
  absl::StatusOr<ImportReport> report = ImportIntoEtcd(*source, options);
  INFO(report.status());
  REQUIRE(report.ok());
  REQUIRE(report->head == 8);
  REQUIRE(report->audit == 8);
  REQUIRE(report->events == 5);

  std::unique_ptr<KeyStore> copy = target.Open(5);
  REQUIRE(copy->store_id() == source->store_id());
  REQUIRE(copy->head_revision() == 8);
  REQUIRE(AllRows(*copy) == AllRows(*source));
  REQUIRE(UsageOnceItHas(*copy, "key_1", 1).at(0).value == "usage");
  REQUIRE(**copy->GetProgress("webhook/whk_1") == "cursor");
  REQUIRE(Serialized(*copy->EventsAfter(3, 100)) == Serialized(*source->EventsAfter(3, 100)));
  REQUIRE(absl::IsOutOfRange(copy->EventsAfter(2, 100).status()));
  for (const char* project : {"prj_x", ""}) {
    REQUIRE(Serialized(*copy->AuditEvents(project, 0, 100)) ==
            Serialized(*source->AuditEvents(project, 0, 100)));
  }
  REQUIRE(Serialized(*copy->AuditLog(0, 100)) == Serialized(*source->AuditLog(0, 100)));
  REQUIRE(copy->AuditLog(0, 100)->size() == 8);
  REQUIRE(*copy->Commit(Put("prj_x", "after")) == 9);

  // Only into an empty prefix.
  REQUIRE(absl::IsFailedPrecondition(ImportIntoEtcd(*source, options).status()));
}

TEST_CASE("store: an import needs the events to keep, and a prefix cut short opens nowhere",
          "[store]") {
  RocksDbKind source_kind;
  std::unique_ptr<KeyStore> source = source_kind.Open(/*retention=*/2);
  for (int i = 0; i < 4; ++i) REQUIRE(source->Commit(Put("prj_x", "v")).ok());
  EtcdKind target;
  EtcdStoreOptions options;
  options.endpoints = *ParseEndpoints(testing::EtcdCluster::Shared().endpoints());
  options.prefix = target.prefix();
  options.event_retention = 3;  // more than the source kept: refused, nothing written
  REQUIRE(absl::IsOutOfRange(ImportIntoEtcd(*source, options).status()));
  options.event_retention = 2;
  REQUIRE(ImportIntoEtcd(*source, options).ok());

  // Keys under a prefix without its store id, as an import cut short leaves
  // them (here: another store's, one level down).
  EtcdStoreOptions outer = options;
  outer.prefix = options.prefix.substr(0, options.prefix.size() - 1) + "-outer/";
  EtcdStoreOptions inner = outer;
  inner.prefix = outer.prefix + "inner/";
  REQUIRE(OpenEtcdStore(inner).ok());
  absl::StatusOr<std::unique_ptr<KeyStore>> opened = OpenEtcdStore(outer);
  REQUIRE(absl::IsFailedPrecondition(opened.status()));
  REQUIRE_THAT(std::string(opened.status().message()), Catch::Contains("no store id"));
}

// What meta/head holds now, read past the store.
std::string RawHead(EtcdClient& client, const EtcdLayout& layout) {
  etcdserverpb::RangeRequest req;
  req.set_key(layout.Head());
  etcdserverpb::RangeResponse resp;
  REQUIRE(client.Range(req, &resp).ok());
  REQUIRE(resp.kvs_size() == 1);
  return resp.kvs(0).value();
}

TEST_CASE(
    "store: an etcd store of the layout before v2 moves to v2 when opened, fencing off "
    "the release before",
    "[store]") {
  EtcdKind kind;
  EtcdStoreOptions options;
  options.endpoints = *ParseEndpoints(testing::EtcdCluster::Shared().endpoints());
  options.prefix = kind.prefix();
  std::unique_ptr<EtcdClient> client = *ConnectEtcd(options);
  const EtcdLayout layout(kind.prefix());
  {
    auto store = kind.Open();
    for (int i = 0; i < 3; ++i) REQUIRE(store->Commit(Put("k" + std::to_string(i), "v")).ok());
  }
  REQUIRE(RawHead(*client, layout) == "3 v2");

  // As the release before left it: the bare revision.
  etcdserverpb::TxnRequest back;
  AddPut(back, layout.Head(), "3");
  etcdserverpb::TxnResponse resp;
  REQUIRE(client->BlindTxn(back, &resp).ok());

  auto store = kind.Open();
  CHECK(store->head_revision() == 3);
  CHECK(RawHead(*client, layout) == "3 v2");
  REQUIRE(*store->Commit(Put("k3", "v")) == 4);
  CHECK(RawHead(*client, layout) == "4 v2");
  CHECK(Read(*store, "k3") == "v");

  // A replica of the release before commits only while the head is its bare
  // revision, and reads it as one: it can neither commit nor open.
  etcdserverpb::TxnRequest old_commit;
  RequireValue(old_commit, layout.Head(), "4");
  AddPut(old_commit, layout.Head(), "5");
  REQUIRE(client->BlindTxn(old_commit, &resp).ok());
  CHECK_FALSE(resp.succeeded());
  CHECK_FALSE(ParseHeadBeforeV2(RawHead(*client, layout)).has_value());
  CHECK(ParseHead(RawHead(*client, layout)) == 4);
}

}  // namespace
}  // namespace latchkey
#endif
