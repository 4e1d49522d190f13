// The store contract of authority/store/key_store.h, run unchanged against every
// KeyStore (docs/design.md, "The store contract"). A store kind provides
// Open(retention): a store over the same data each time it is called, so a
// second Open after the first is closed is a reopen.
#include <catch2/catch.hpp>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_join.h"
#include "authority/core/internal/mutations.h"
#include "authority/store/etcd/etcd_store.h"
#include "authority/store/key_store.h"
#include "authority/store/rocksdb/rocksdb_store.h"
#include "common/key_format.h"
#include "common/mutex.h"
#include "common/strings.h"
#include "tests/testing/etcd_cluster.h"
#include "tests/testing/testing.h"
#include "tests/testing/thread_checking_store.h"

namespace latchkey {
namespace {

class RocksDbKind {
 public:
  std::unique_ptr<KeyStore> Open(uint64_t retention = 100000) {
    absl::StatusOr<std::unique_ptr<KeyStore>> store = OpenRocksDbStore({dir_.path(), retention});
    REQUIRE(store.ok());
    // Wrapped only so that ThreadSanitizer sees RocksDB's memtable ordering
    // (see ThreadCheckingStore); it changes no result.
    return std::make_unique<testing::ThreadCheckingStore>(*std::move(store));
  }

 private:
  testing::TempDir dir_;
};

// A store under its own prefix on the shared three-member etcd cluster.
class EtcdKind {
 public:
  std::unique_ptr<KeyStore> Open(uint64_t retention = 100000) {
    EtcdStoreOptions options;
    options.endpoints = *ParseEndpoints(testing::EtcdCluster::Shared().endpoints());
    options.prefix = prefix_;
    options.event_retention = retention;
    absl::StatusOr<std::unique_ptr<KeyStore>> store = OpenEtcdStore(options);
    INFO(store.status());
    REQUIRE(store.ok());
    return *std::move(store);
  }

  const std::string& prefix() const { return prefix_; }

 private:
  const std::string prefix_ = "/conformance-" + RandomBase62(12) + "/";
};

Mutation Put(const std::string& key, const std::string& value) {
  Mutation m;
  m.writes.push_back(Write{Table::kProjects, key, value});
  m.audit.set_project_id("prj_x");
  m.audit.set_action("test");
  return m;
}

std::optional<std::string> Read(const KeyStore& store, const std::string& key,
                                const StoreSnapshot* at = nullptr) {
  absl::StatusOr<std::optional<std::string>> row = store.Get(Table::kProjects, key, at);
  REQUIRE(row.ok());
  return *row;
}

// gRPC cannot run under our ThreadSanitizer build (Debian's Abseil is not
// instrumented; see scripts/test), so there the etcd store sits out.
#if defined(__SANITIZE_THREAD__)
#define STORE_KINDS RocksDbKind
#else
#define STORE_KINDS RocksDbKind, EtcdKind
#endif

TEMPLATE_TEST_CASE("store: revisions start at 1, are contiguous, and survive reopening", "[store]",
                   STORE_KINDS) {
  TestType kind;
  std::string store_id;
  {
    auto store = kind.Open();
    store_id = store->store_id();
    REQUIRE(store->head_revision() == 0);
    REQUIRE(store->next_revision() == 1);
    for (int i = 1; i <= 20; ++i) {
      absl::StatusOr<uint64_t> rev = store->Commit(Put("k" + std::to_string(i), "v"));
      REQUIRE(rev.ok());
      REQUIRE(*rev == static_cast<uint64_t>(i));
    }
  }
  auto store = kind.Open();
  REQUIRE(store->store_id() == store_id);
  REQUIRE(store->head_revision() == 20);
  REQUIRE(store->next_revision() == 21);
  REQUIRE(*store->Commit(Put("k21", "v")) == 21);
  for (int i = 1; i <= 21; ++i) REQUIRE(Read(*store, "k" + std::to_string(i)).has_value());
  absl::StatusOr<std::vector<v1::KeyEvent>> events = store->EventsAfter(0, 100);
  REQUIRE(events.ok());
  REQUIRE(events->size() == 21);
  for (size_t i = 0; i < events->size(); ++i) REQUIRE((*events)[i].revision() == i + 1);
}

TEMPLATE_TEST_CASE("store: a mutation's writes, event and audit record commit together", "[store]",
                   STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  Mutation m = Put("p", "1");
  m.writes.push_back(Write{Table::kKeys, "k", "2"});
  m.event.add_removed_digests("d");
  std::vector<uint64_t> heard;
  store->SetCommitListener(
      [&](const v1::KeyEvent& e, const v1::AuditEvent&) { heard.push_back(e.revision()); });
  REQUIRE(*store->Commit(std::move(m)) == 1);
  REQUIRE(*Read(*store, "p") == "1");
  REQUIRE(**store->Get(Table::kKeys, "k") == "2");
  REQUIRE(store->EventsAfter(0, 10)->at(0).removed_digests(0) == "d");
  absl::StatusOr<std::vector<v1::AuditEvent>> audit = store->AuditEvents("prj_x", 0, 10);
  REQUIRE(audit->size() == 1);
  REQUIRE(audit->at(0).revision() == 1);
  REQUIRE(heard == std::vector<uint64_t>{1});
  // Deleting a row that does not exist is not an error.
  Mutation erase = Put("q", "1");
  erase.writes.push_back(Write{Table::kKeys, "never-written", std::nullopt});
  erase.writes.push_back(Write{Table::kKeys, "k", std::nullopt});
  REQUIRE(*store->Commit(std::move(erase)) == 2);
  REQUIRE_FALSE(store->Get(Table::kKeys, "k")->has_value());
}

TEMPLATE_TEST_CASE("store: a mutation built for a revision another commit took is refused",
                   "[store]", STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  Transaction first(*store);
  Transaction second(*store);
  REQUIRE(first.revision() == 1);
  REQUIRE(second.revision() == 1);
  Mutation a = Put("a", "1");
  first.Finish(a);
  REQUIRE(*store->Commit(std::move(a)) == 1);
  Mutation b = Put("b", "1");
  second.Finish(b);
  absl::StatusOr<uint64_t> refused = store->Commit(std::move(b));
  REQUIRE(absl::IsAborted(refused.status()));
  // Refused means nothing happened: no row, no revision, no event.
  REQUIRE_FALSE(Read(*store, "b").has_value());
  REQUIRE(store->head_revision() == 1);
  REQUIRE(store->next_revision() == 2);
  REQUIRE(store->EventsAfter(0, 10)->size() == 1);
  REQUIRE(store->stats().conflicts == 1);
  // Built again, it commits.
  Transaction again(*store);
  Mutation retry = Put("b", "1");
  again.Finish(retry);
  REQUIRE(*store->Commit(std::move(retry)) == 2);
}

TEMPLATE_TEST_CASE("store: a mutation commits only while every row it read holds what it read",
                   "[store]", STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  REQUIRE(store->Commit(Put("row", "v1")).ok());

  // Read "row" (v1) and "absent" (missing), then someone else changes "row".
  Mutation stale = Put("out", "x");
  stale.reads.push_back({Table::kProjects, "row", "v1"});
  stale.reads.push_back({Table::kProjects, "absent", std::nullopt});
  REQUIRE(store->Commit(Put("row", "v2")).ok());
  REQUIRE(absl::IsAborted(store->Commit(stale).status()));
  REQUIRE_FALSE(Read(*store, "out").has_value());

  // A row read as missing that now exists fails the same way.
  Mutation missing = Put("out", "x");
  missing.reads.push_back({Table::kProjects, "row", "v2"});
  missing.reads.push_back({Table::kProjects, "absent", std::nullopt});
  REQUIRE(store->Commit(Put("absent", "now")).ok());
  REQUIRE(absl::IsAborted(store->Commit(missing).status()));

  // Changed and changed back is the state that was read: it commits.
  Mutation same = Put("out", "x");
  same.reads.push_back({Table::kProjects, "row", "v2"});
  REQUIRE(store->Commit(Put("row", "v3")).ok());
  REQUIRE(store->Commit(Put("row", "v2")).ok());
  absl::StatusOr<uint64_t> committed = store->Commit(same);
  REQUIRE(committed.ok());
  REQUIRE(*Read(*store, "out") == "x");
  REQUIRE(store->head_revision() == *committed);
}

TEMPLATE_TEST_CASE("store: a transaction reads what was appended and records it as a precondition",
                   "[store]", STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  REQUIRE(store->Commit(Put("counter", "1")).ok());
  Transaction tx(*store);
  absl::StatusOr<std::optional<std::string>> seen = tx.Get(Table::kProjects, "counter");
  REQUIRE(**seen == "1");
  Mutation m = Put("counter", "2");
  tx.Finish(m);
  REQUIRE(m.revision == 2);
  REQUIRE(m.reads.size() == 1);
  REQUIRE(m.reads[0].key == "counter");
  REQUIRE(*m.reads[0].value == "1");
  REQUIRE(*store->Commit(std::move(m)) == 2);
  REQUIRE(*Read(*store, "counter") == "2");
}

TEMPLATE_TEST_CASE("store: concurrent read-modify-write through transactions loses no update",
                   "[store][concurrency]", STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  constexpr int kThreads = 4;
  constexpr int kEach = 25;
  std::atomic<int> refused{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        for (;;) {
          Transaction tx(*store);
          absl::StatusOr<std::optional<std::string>> row = tx.Get(Table::kProjects, "counter");
          if (!row.ok()) {
            failed = true;
            return;
          }
          const int value = row->has_value() ? std::stoi(**row) : 0;
          Mutation m = Put("counter", std::to_string(value + 1));
          tx.Finish(m);
          absl::StatusOr<uint64_t> rev = store->Commit(std::move(m));
          if (rev.ok()) break;
          if (!absl::IsAborted(rev.status())) {
            failed = true;
            return;
          }
          ++refused;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  REQUIRE_FALSE(failed);
  REQUIRE(*Read(*store, "counter") == std::to_string(kThreads * kEach));
  REQUIRE(store->head_revision() == kThreads * kEach);
  REQUIRE(store->stats().conflicts == static_cast<uint64_t>(refused.load()));
  absl::StatusOr<std::vector<v1::KeyEvent>> events = store->EventsAfter(0, 1000);
  REQUIRE(events->size() == kThreads * kEach);
  for (size_t i = 0; i < events->size(); ++i) REQUIRE((*events)[i].revision() == i + 1);
}

TEMPLATE_TEST_CASE("store: once Sync returns, reads, audit, replay and the listener have it",
                   "[store]", STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  Mutex mu;
  std::vector<uint64_t> heard;
  store->SetCommitListener([&](const v1::KeyEvent& e, const v1::AuditEvent& a) {
    MutexLock lock(&mu);
    if (e.revision() == a.revision()) heard.push_back(e.revision());
  });
  absl::StatusOr<uint64_t> rev = store->Append(Put("p", "1"));
  REQUIRE(rev.ok());
  REQUIRE(*rev == 1);
  REQUIRE(store->next_revision() == 2);
  // Before Sync, a plain read is at the head, whatever it is: all or nothing.
  std::unique_ptr<StoreSnapshot> before = store->Snapshot();
  REQUIRE(Read(*store, "p", before.get()).has_value() == (before->revision() == 1));
  REQUIRE(store->Sync(1).ok());
  REQUIRE(store->head_revision() == 1);
  REQUIRE(*Read(*store, "p") == "1");
  REQUIRE(store->Snapshot()->revision() == 1);
  REQUIRE(store->AuditEvents("prj_x", 0, 10)->size() == 1);
  REQUIRE(store->EventsAfter(0, 10)->size() == 1);
  MutexLock lock(&mu);
  REQUIRE(heard == std::vector<uint64_t>{1});
}

// Runs `work` on a thread of its own and waits up to `seconds` for it. A
// store that deadlocks leaves that thread stuck for good (and the store's
// destructor with it), so the test reports it and ends the process rather
// than hang until ctest's timeout.
void FinishesWithin(int seconds, const char* what, std::function<void()> work) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  std::thread([work = std::move(work), done] {
    work();
    done->set_value();
  }).detach();
  if (finished.wait_for(std::chrono::seconds(seconds)) != std::future_status::ready) {
    std::fprintf(stderr, "FAILED: %s did not finish within %d s: a deadlock\n", what, seconds);
    std::_Exit(1);
  }
}

TEMPLATE_TEST_CASE("store: a commit listener may read the store, and its Sync is refused",
                   "[store]", STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  REQUIRE(store->Commit(Put("a", "1")).ok());
  // What the listener saw, by call, from inside it (key_store.h's rule).
  std::map<std::string, std::string> seen;
  store->SetCommitListener([&](const v1::KeyEvent& e, const v1::AuditEvent&) {
    if (e.revision() != 2) return;
    const auto note = [&](const char* call, const absl::Status& s) {
      seen[call] = s.ok() ? "OK" : absl::StatusCodeToString(s.code());
    };
    note("head_revision",
         store->head_revision() >= 2 ? absl::OkStatus() : absl::InternalError("behind"));
    note("Get", store->Get(Table::kProjects, "b").status());
    note("Scan", store->Scan(Table::kProjects, "", "", 10).status());
    note("GetLatest", store->GetLatest(Table::kProjects, "b").status());
    note("ScanLatest", store->ScanLatest(Table::kProjects, "", "", 10).status());
    note("EventsAfter", store->EventsAfter(0, 10).status());
    note("AuditLog", store->AuditLog(0, 10).status());
    note("AuditEvents", store->AuditEvents("prj_x", 0, 10).status());
    std::unique_ptr<StoreSnapshot> snap = store->Snapshot();
    note("Snapshot", store->Get(Table::kProjects, "b", snap.get()).status());
    note("Reachable", store->Reachable());
    note("GetProgress", store->GetProgress("p").status());
    store->AwaitKnownRevisions();
    note("Sync", store->Sync(e.revision()));
  });
  absl::StatusOr<uint64_t> committed;
  FinishesWithin(20, "a commit whose listener calls the store",
                 [&] { committed = store->Commit(Put("b", "2")); });
  REQUIRE(committed.ok());
  store->SetCommitListener(nullptr);
  const std::map<std::string, std::string> expected = {
      {"head_revision", "OK"}, {"Get", "OK"},         {"Scan", "OK"},
      {"GetLatest", "OK"},     {"ScanLatest", "OK"},  {"EventsAfter", "OK"},
      {"AuditLog", "OK"},      {"AuditEvents", "OK"}, {"Snapshot", "OK"},
      {"Reachable", "OK"},     {"GetProgress", "OK"}, {"Sync", "FAILED_PRECONDITION"}};
  REQUIRE(seen == expected);
  // Outside the listener the same Sync is fine.
  REQUIRE(store->Sync(2).ok());
}

TEMPLATE_TEST_CASE("store: a snapshot taken in the listener reads exactly its revision, in a batch",
                   "[store]", STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  // Two mutations appended together commit as one batch (etcd: one
  // transaction, one etcd revision); the listener hears the first while the
  // second is already in the store.
  std::vector<std::string> mismatches;
  store->SetCommitListener([&](const v1::KeyEvent& e, const v1::AuditEvent&) {
    std::unique_ptr<StoreSnapshot> snap = store->Snapshot();
    absl::StatusOr<std::optional<std::string>> second =
        store->Get(Table::kProjects, "second", snap.get());
    const bool has_second = second.ok() && second->has_value();
    if (snap->revision() < e.revision() || has_second != (snap->revision() >= 2)) {
      mismatches.push_back(StrCat("heard ", e.revision(), ", snapshot ", snap->revision(),
                                  has_second ? " holds" : " lacks", " revision 2's row"));
    }
  });
  REQUIRE(*store->Append(Put("first", "1")) == 1);
  REQUIRE(*store->Append(Put("second", "2")) == 2);
  REQUIRE(store->Sync(2).ok());
  store->SetCommitListener(nullptr);
  INFO(absl::StrJoin(mismatches, "; "));
  REQUIRE(mismatches.empty());
}

TEMPLATE_TEST_CASE("store: a snapshot keeps reading the state of its revision", "[store]",
                   STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  REQUIRE(store->Commit(Put("a", "1")).ok());
  std::unique_ptr<StoreSnapshot> snap = store->Snapshot();
  REQUIRE(store->Commit(Put("a", "2")).ok());
  REQUIRE(store->Commit(Put("b", "1")).ok());
  REQUIRE(snap->revision() == 1);
  REQUIRE(*Read(*store, "a", snap.get()) == "1");
  REQUIRE_FALSE(Read(*store, "b", snap.get()).has_value());
  REQUIRE(store->Scan(Table::kProjects, "", "", 10, snap.get())->rows.size() == 1);
  REQUIRE(store->Scan(Table::kProjects, "", "", 10)->rows.size() == 2);
  REQUIRE(store->Snapshot()->revision() == 3);
}

TEMPLATE_TEST_CASE(
    "store: events beyond the retention are trimmed and asking for them is "
    "OUT_OF_RANGE",
    "[store]", STORE_KINDS) {
  TestType kind;
  auto store = kind.Open(5);
  for (int i = 0; i < 12; ++i) REQUIRE(store->Commit(Put("k", "v")).ok());
  REQUIRE(absl::IsOutOfRange(store->EventsAfter(0, 100).status()));
  REQUIRE(absl::IsOutOfRange(store->EventsAfter(6, 100).status()));
  absl::StatusOr<std::vector<v1::KeyEvent>> kept = store->EventsAfter(7, 100);
  REQUIRE(kept.ok());
  REQUIRE(kept->size() == 5);
  REQUIRE(kept->front().revision() == 8);
  REQUIRE(store->EventsAfter(7, 2)->size() == 2);
  REQUIRE(absl::IsFailedPrecondition(store->EventsAfter(13, 100).status()));
  REQUIRE(store->EventsAfter(12, 100)->empty());
}

TEMPLATE_TEST_CASE("store: scans page by prefix and resume after the last key", "[store]",
                   STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  for (const char* k : {"a1", "a2", "a3", "b1"}) REQUIRE(store->Commit(Put(k, "v")).ok());
  absl::StatusOr<Page> first = store->Scan(Table::kProjects, "a", "", 2);
  REQUIRE(first->rows.size() == 2);
  REQUIRE(first->more);
  absl::StatusOr<Page> rest = store->Scan(Table::kProjects, "a", first->rows.back().key, 2);
  REQUIRE(rest->rows.size() == 1);
  REQUIRE(rest->rows[0].key == "a3");
  REQUIRE_FALSE(rest->more);
  REQUIRE(store->Scan(Table::kKeys, "a", "", 2)->rows.empty());  // tables are apart
}

// A replicated store reads usage from what its watch brought: a moment.
std::vector<UsageRow> UsageOnceItHas(const KeyStore& store, const std::string& key_id,
                                     size_t rows) {
  std::vector<UsageRow> got;
  testing::Eventually([&] {
    got = *store.GetUsage(key_id);
    return got.size() == rows;
  });
  return got;
}

TEMPLATE_TEST_CASE("store: usage rows are one writer's, replaced blindly, and take no revision",
                   "[store]", STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  absl::StatusOr<std::string> writer = store->UsageWriter();
  REQUIRE(writer.ok());
  REQUIRE(store->PutUsage(*writer, {{"key_1", "", "one"}, {"key_12", "", "twelve"}}).ok());
  std::vector<UsageRow> rows = UsageOnceItHas(*store, "key_1", 1);
  REQUIRE(rows.size() == 1);  // key_12's row is not key_1's
  REQUIRE(rows[0].writer == *writer);
  REQUIRE(rows[0].value == "one");
  REQUIRE(store->PutUsage(*writer, {{"key_1", "", "more"}}).ok());
  REQUIRE(testing::Eventually([&] { return store->GetUsage("key_1")->at(0).value == "more"; }));
  REQUIRE(store->head_revision() == 0);
  REQUIRE(store->next_revision() == 1);
  REQUIRE(absl::IsAborted(store->PutUsage(*writer + "9", {{"key_1", "", "not ours"}})));

  REQUIRE(store->EraseUsage("key_1").ok());
  REQUIRE(UsageOnceItHas(*store, "key_1", 0).empty());
  REQUIRE(UsageOnceItHas(*store, "key_12", 1).size() == 1);
}

TEMPLATE_TEST_CASE("store: a usage put larger than one write allows lands whole", "[store]",
                   STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  const std::string writer = *store->UsageWriter();
  // 300 rows of 6 KB: more operations (128) and more bytes (1.5 MiB) than one
  // etcd transaction takes.
  std::vector<UsageRow> rows;
  for (int i = 0; i < 300; ++i) {
    rows.push_back({"key_" + std::to_string(1000 + i), "", std::string(6000, 'a' + i % 26)});
  }
  absl::Status put = store->PutUsage(writer, rows);
  INFO(put);
  REQUIRE(put.ok());
  for (int i : {0, 127, 128, 299}) {
    std::vector<UsageRow> got = UsageOnceItHas(*store, rows[i].key_id, 1);
    REQUIRE(got.size() == 1);
    REQUIRE(got[0].value == rows[i].value);
  }
}

TEMPLATE_TEST_CASE("store: a reopened store writes usage as the writer it had, rows included",
                   "[store]", STORE_KINDS) {
  TestType kind;
  std::string writer;
  {
    auto store = kind.Open();
    writer = *store->UsageWriter();
    REQUIRE(store->PutUsage(writer, {{"key_1", "", "before"}}).ok());
    UsageOnceItHas(*store, "key_1", 1);
  }
  auto store = kind.Open();
  REQUIRE(*store->UsageWriter() == writer);
  const std::vector<UsageRow> rows = UsageOnceItHas(*store, "key_1", 1);
  REQUIRE(rows.size() == 1);
  REQUIRE(rows[0].writer == writer);
  REQUIRE(rows[0].value == "before");
}

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

TEMPLATE_TEST_CASE("store: the audit log by revision holds every project's records, in order",
                   "[store]", STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  for (const char* project : {"prj_a", "", "prj_b", "prj_a"}) {
    Mutation m = Put("row", project);
    m.audit.set_project_id(project);
    REQUIRE(store->Commit(std::move(m)).ok());
  }
  absl::StatusOr<std::vector<v1::AuditEvent>> all = store->AuditLog(0, 100);
  REQUIRE(all.ok());
  REQUIRE(all->size() == 4);
  std::vector<std::string> projects;
  for (size_t i = 0; i < all->size(); ++i) {
    REQUIRE((*all)[i].revision() == i + 1);
    projects.push_back((*all)[i].project_id());
  }
  REQUIRE(projects == std::vector<std::string>{"prj_a", "", "prj_b", "prj_a"});
  absl::StatusOr<std::vector<v1::AuditEvent>> page = store->AuditLog(1, 2);
  REQUIRE(page.ok());
  REQUIRE(page->size() == 2);
  REQUIRE(page->front().revision() == 2);
  REQUIRE(store->AuditLog(4, 100)->empty());
  // Reopened, it is still there.
  store.reset();
  store = kind.Open();
  REQUIRE(store->AuditLog(0, 100)->size() == 4);
}

TEMPLATE_TEST_CASE("store: progress rows are kept, replaced and deleted, and take no revision",
                   "[store]", STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  REQUIRE_FALSE(store->GetProgress("webhook/whk_1")->has_value());
  REQUIRE(store->PutProgress("webhook/whk_1", "cursor 7", "").ok());
  REQUIRE(store->PutProgress("webhook/whk_12", "other", "").ok());
  REQUIRE(**store->GetProgress("webhook/whk_1") == "cursor 7");
  REQUIRE(store->PutProgress("webhook/whk_1", "cursor 9", "").ok());
  REQUIRE(**store->GetProgress("webhook/whk_1") == "cursor 9");
  REQUIRE(store->head_revision() == 0);
  REQUIRE(store->next_revision() == 1);
  store.reset();
  store = kind.Open();
  REQUIRE(**store->GetProgress("webhook/whk_1") == "cursor 9");
  REQUIRE(store->PutProgress("webhook/whk_1", std::nullopt, "").ok());
  REQUIRE_FALSE(store->GetProgress("webhook/whk_1")->has_value());
  REQUIRE(**store->GetProgress("webhook/whk_12") == "other");
  REQUIRE(store->PutProgress("webhook/whk_2", "two", "").ok());
  absl::StatusOr<Page> page = store->ScanProgress("", 1);
  REQUIRE(page.ok());
  REQUIRE(page->rows.size() == 1);
  REQUIRE(page->rows[0].key == "webhook/whk_12");
  REQUIRE(page->more);
  page = store->ScanProgress("webhook/whk_12", 10);
  REQUIRE(page->rows.size() == 1);
  REQUIRE(page->rows[0].key == "webhook/whk_2");
  REQUIRE(page->rows[0].value == "two");
  REQUIRE_FALSE(page->more);
}

TEST_CASE("store: a store one process owns is a lone replica: its duties, and nobody to share with",
          "[store]") {
  RocksDbKind kind;
  std::unique_ptr<KeyStore> store = kind.Open();
  REQUIRE(dynamic_cast<LoneReplica*>(&store->replicas()) != nullptr);
  REQUIRE(*store->replicas().Lead("webhooks"));
  REQUIRE(store->replicas().Share("summary").ok());
  REQUIRE(store->replicas().SharedByOthers()->empty());
  // A progress row written for a duty it holds.
  REQUIRE(store->PutProgress("webhook/whk_1", "mine", "webhooks").ok());
  REQUIRE(**store->GetProgress("webhook/whk_1") == "mine");
}

TEMPLATE_TEST_CASE("store: two stores have different ids", "[store]", STORE_KINDS) {
  TestType a, b;
  REQUIRE(a.Open()->store_id() != b.Open()->store_id());
}

#if !defined(__SANITIZE_THREAD__)
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
  a->SetCommitListener([&](const v1::KeyEvent& e, const v1::AuditEvent&) {
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
#endif

}  // namespace
}  // namespace latchkey
