// The store contract of authority/store/key_store.h, run unchanged against every
// KeyStore (docs/design.md, "The store contract"), each a kind of
// store_kinds.h. What one store alone does is in rocksdb_store_test.cc and
// etcd_store_test.cc.
#include <catch2/catch.hpp>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_join.h"
#include "authority/core/internal/mutations.h"
#include "authority/store/key_store.h"
#include "common/key_format.h"
#include "common/mutex.h"
#include "common/strings.h"
#include "tests/authority/store/store_kinds.h"

namespace latchkey {
namespace {

using testing::EtcdKind;
using testing::Put;
using testing::Read;
using testing::RocksDbKind;
using testing::UsageOnceItHas;

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
  store->SetCommitListener([&](const v1::KeyEvent& e, const v1::AuditEvent&, TableSet) {
    heard.push_back(e.revision());
  });
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
  store->SetCommitListener([&](const v1::KeyEvent& e, const v1::AuditEvent& a, TableSet) {
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

TEMPLATE_TEST_CASE("store: the listener hears the tables each revision wrote", "[store]",
                   STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  Mutex mu;
  std::map<uint64_t, TableSet> heard;
  store->SetCommitListener([&](const v1::KeyEvent& e, const v1::AuditEvent&, TableSet written) {
    MutexLock lock(&mu);
    heard[e.revision()] = written;
  });
  REQUIRE(*store->Commit(Put("p1", "v")) == 1);
  Mutation principal;
  principal.writes.push_back(Write{Table::kPrincipals, "prn_1", "record"});
  principal.writes.push_back(Write{Table::kGuards, "principals", "1 x"});
  principal.audit.set_action("anything at all");
  REQUIRE(*store->Commit(std::move(principal)) == 2);
  Mutation webhook;
  webhook.writes.push_back(Write{Table::kWebhooks, "whk_1", "record"});
  webhook.audit.set_action("test");
  REQUIRE(*store->Commit(std::move(webhook)) == 3);
  Mutation erase;
  erase.writes.push_back(Write{Table::kWebhooks, "whk_1", std::nullopt});  // a delete counts
  erase.audit.set_action("test");
  REQUIRE(*store->Commit(std::move(erase)) == 4);
  REQUIRE(testing::Eventually([&] {
    MutexLock lock(&mu);
    return heard.size() == 4;
  }));
  store->SetCommitListener(nullptr);
  MutexLock lock(&mu);
  // Each revision was its own batch here, so each hears its own tables.
  CHECK(heard[1].Has(Table::kProjects));
  CHECK_FALSE(heard[1].Has(Table::kPrincipals));
  CHECK(heard[2].Has(Table::kPrincipals));
  CHECK(heard[2].Has(Table::kGuards));
  CHECK_FALSE(heard[2].Has(Table::kProjects));
  CHECK(heard[3].Has(Table::kWebhooks));
  CHECK_FALSE(heard[3].Has(Table::kPrincipals));
  CHECK(heard[4].Has(Table::kWebhooks));
  CHECK_FALSE(heard[4].Has(Table::kProjects));
}

TEMPLATE_TEST_CASE("store: a commit listener may read the store, and its Sync is refused",
                   "[store]", STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  REQUIRE(store->Commit(Put("a", "1")).ok());
  // What the listener saw, by call, from inside it (key_store.h's rule).
  std::map<std::string, std::string> seen;
  store->SetCommitListener([&](const v1::KeyEvent& e, const v1::AuditEvent&, TableSet) {
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
  store->SetCommitListener([&](const v1::KeyEvent& e, const v1::AuditEvent&, TableSet) {
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

TEMPLATE_TEST_CASE("store: ForEach hands rows in order from a cursor, at a snapshot, until told",
                   "[store]", STORE_KINDS) {
  TestType kind;
  auto store = kind.Open();
  // More rows than the default's page, so the etcd store pages through them.
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) keys.push_back(StrCat("k", 1000 + i));
  for (size_t from = 0; from < keys.size(); from += 100) {  // within etcd's operations per txn
    Mutation m = Put(keys[from], "v" + keys[from]);
    for (size_t i = from + 1; i < from + 100; ++i) {
      m.writes.push_back(Write{Table::kProjects, keys[i], "v" + keys[i]});
    }
    REQUIRE(store->Commit(std::move(m)).ok());
  }
  std::unique_ptr<StoreSnapshot> snap = store->Snapshot();
  REQUIRE(store->Commit(Put("k0000", "later")).ok());
  REQUIRE(store->Commit(Put(keys[0], "changed")).ok());

  auto read = [&](std::string_view after, const StoreSnapshot* at, size_t stop_after) {
    std::vector<std::string> seen;
    absl::Status s = store->ForEach(Table::kProjects, after, at,
                                    [&](std::string_view key, std::string_view value) {
                                      seen.push_back(StrCat(key, "=", value));
                                      return seen.size() < stop_after;
                                    });
    REQUIRE(s.ok());
    return seen;
  };
  std::vector<std::string> all = read("", snap.get(), 1000);
  REQUIRE(all.size() == 300);
  for (size_t i = 0; i < keys.size(); ++i) REQUIRE(all[i] == keys[i] + "=v" + keys[i]);
  std::vector<std::string> head = read("", nullptr, 1000);
  REQUIRE(head.size() == 301);
  REQUIRE(head[0] == "k0000=later");
  REQUIRE(head[1] == keys[0] + "=changed");
  REQUIRE(read(keys[0], snap.get(), 1000).size() == 299);  // after the cursor, not at it
  REQUIRE(read("k1", snap.get(), 1000).size() == 300);     // a cursor between rows
  REQUIRE(read("", snap.get(), 7).size() == 7);            // stops when told
  REQUIRE(read(keys.back(), snap.get(), 1000).empty());
  REQUIRE(store
              ->ForEach(Table::kKeys, "", nullptr,
                        [](std::string_view, std::string_view) {
                          FAIL("tables are apart");
                          return true;
                        })
              .ok());
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

TEMPLATE_TEST_CASE("store: two stores have different ids", "[store]", STORE_KINDS) {
  TestType a, b;
  REQUIRE(a.Open()->store_id() != b.Open()->store_id());
}

}  // namespace
}  // namespace latchkey
