// The authority's state, behind one small interface (docs/design.md, "The
// store contract").
//
// A KeyStore holds tables of opaque rows plus two logs: the event log that
// sidecars follow and the audit log people read. Every change is a Mutation:
// a transaction the store commits atomically with its revision, its event
// and its audit record, or refuses. The store owns the revision sequence: a
// mutation is built for the revision the store says comes next (its records
// name it) and states as preconditions the rows it read and what they held;
// the store refuses it with ABORTED when another commit took that revision or
// changed one of those rows first, and the caller builds it again.
//
// Append commits a mutation in order; Sync makes it durable and only then
// publishes it: plain reads, snapshots, replay and the commit listener (and
// so sidecars) never see a change that is not durable. Concurrent Syncs share
// one disk flush or one replicated write (group commit). The embedded
// RocksDB store is the default; nothing outside authority/store/rocksdb/
// depends on RocksDB types, and tests/authority/store/store_conformance_test.cc holds every
// store to this contract.
//
// A KeyStore is safe for concurrent access from multiple threads without any
// external synchronization. Commits are totally ordered by revision.
#ifndef LATCHKEY_AUTHORITY_STORE_KEY_STORE_H_
#define LATCHKEY_AUTHORITY_STORE_KEY_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "authority/store/replicas.h"
#include "latchkey/v1/key_sync.pb.h"
#include "latchkey/v1/resources.pb.h"

namespace latchkey {

enum class Table {
  kProjects,      // project id -> ProjectRecord
  kKeys,          // key id -> KeyRecord
  kProjectKeys,   // project id + key id -> "" (index for ListKeys)
  kDigests,       // digest -> key id (every digest a key has, current or retired)
  kPrincipals,    // principal id -> PrincipalRecord (with its token's digest)
  kGuards,        // set name -> its last change: revision and a random suffix (see Precondition)
  kLeaks,         // digest -> LeakRecord (a value reported leaked)
  kWebhooks,      // webhook id -> WebhookRecord
  kRoleBindings,  // binding id -> v1::RoleBinding
  kSidecarKeys,   // key id -> what sidecars hold of it (authority/core/sidecar_keys.h)
};

// Every table, for whatever walks them all (an import, a test's comparison).
inline constexpr Table kAllTables[] = {Table::kProjects,   Table::kKeys,       Table::kProjectKeys,
                                       Table::kDigests,    Table::kPrincipals, Table::kGuards,
                                       Table::kLeaks,      Table::kWebhooks,   Table::kRoleBindings,
                                       Table::kSidecarKeys};

// A table's name as both stores write it: RocksDB's column family, etcd's
// key segment (P t/<name>/). Never renamed: stored data carries it.
constexpr std::string_view TableName(Table t) {
  switch (t) {
    case Table::kProjects:
      return "projects";
    case Table::kKeys:
      return "keys";
    case Table::kProjectKeys:
      return "project_keys";
    case Table::kDigests:
      return "digests";
    case Table::kPrincipals:
      return "principals";
    case Table::kGuards:
      return "guards";
    case Table::kLeaks:
      return "leaks";
    case Table::kWebhooks:
      return "webhooks";
    case Table::kRoleBindings:
      return "role_bindings";
    case Table::kSidecarKeys:
      return "sidecar_keys";
  }
  return "unknown";
}

// The oldest event a store keeping the last `retention` events (at least 1)
// still has once `head` is appended; 1 while it has them all.
inline uint64_t OldestRetained(uint64_t head, uint64_t retention) {
  return head > retention ? head - retention + 1 : 1;
}

// The event that leaves a store keeping the last `retention` events when
// `revision` is appended; 0 when none does.
inline uint64_t EventLeavingAt(uint64_t revision, uint64_t retention) {
  return OldestRetained(revision, retention) - 1;
}

// INVALID_ARGUMENT for a retention no store can keep.
inline absl::Status CheckEventRetention(uint64_t retention) {
  if (retention == 0) return absl::InvalidArgumentError("event retention must be at least 1");
  return absl::OkStatus();
}

// One row to write; no value deletes the row. It is not an error to delete a
// row that does not exist.
struct Write {
  Table table;
  std::string key;
  std::optional<std::string> value;
};

// A row a mutation read and depends on: when it commits the row must still
// hold `value` (no value: still absent). Comparing values, not versions,
// works natively in every store and needs no version in the row; a value
// changed and changed back is the state the mutation read, so it stays
// correct. A rule over a whole set of rows (the last ADMIN) reads a guard row
// (Table::kGuards) that every change to the set writes.
struct Precondition {
  Table table;
  std::string key;
  std::optional<std::string> value;
};

// Everything one change does. The store fills in the revision of `event` and
// `audit`; `event` may carry no changes (sidecars still see the revision).
struct Mutation {
  // The revision it was built for (Transaction::revision()), when its rows
  // name it; 0 takes whatever revision comes next.
  uint64_t revision = 0;
  std::vector<Precondition> reads;
  std::vector<Write> writes;
  v1::KeyEvent event;
  v1::AuditEvent audit;
};

// A set of tables: those a revision's writes touched, as its commit
// listener hears them (KeyStore::CommitListener).
class TableSet {
 public:
  constexpr TableSet() = default;
  // Every table: for revisions whose writes a store cannot tell.
  static constexpr TableSet All() {
    TableSet s;
    s.bits_ = ~uint32_t{0};
    return s;
  }
  // The tables `writes` touch.
  static TableSet Of(const std::vector<Write>& writes);

  void Add(Table t) { bits_ |= Bit(t); }
  void Add(TableSet more) { bits_ |= more.bits_; }
  bool Has(Table t) const { return (bits_ & Bit(t)) != 0; }
  bool operator==(const TableSet&) const = default;

 private:
  static constexpr uint32_t Bit(Table t) { return uint32_t{1} << static_cast<int>(t); }
  uint32_t bits_ = 0;
};

// The table `name` names (TableName); nullopt for a name that is no table.
std::optional<Table> TableNamed(std::string_view name);

// What a store has done since it opened; for tests and metrics.
struct StoreStats {
  uint64_t commits = 0;          // mutations appended
  uint64_t conflicts = 0;        // mutations refused: revision taken or a precondition failed
  uint64_t syncs = 0;            // fsyncs of the log (group commit shares one among many)
  uint64_t advisory_writes = 0;  // usage writes: one per store write, however many rows
  // Calls to a remote store (etcd) and the seconds they took, summed.
  uint64_t remote_calls = 0;
  double remote_call_seconds = 0;
};

struct Row {
  std::string key;
  std::string value;
};

// One writer's usage row of a key (KeyStore::PutUsage).
struct UsageRow {
  std::string key_id;
  std::string writer;  // empty: a row written before usage had writers
  std::string value;
};

// How usage rows are keyed beside the tables: `writer`'s row of a key by
// key id + "/" + writer, so that one key's rows sort together (key ids hold
// no "/"); the row from before writers by the key id alone.
std::string UsageRowKey(std::string_view key_id, std::string_view writer);
// The writer of a row of `key_id`'s usage, from its row key.
std::string UsageWriterOf(std::string_view row_key, std::string_view key_id);

struct Page {
  std::vector<Row> rows;
  bool more = false;  // rows remain after the last one returned
};

// A consistent read view, frozen at one revision. Safe for concurrent use; the
// KeyStore must outlive it.
class StoreSnapshot {
 public:
  virtual ~StoreSnapshot() = default;
  virtual uint64_t revision() const = 0;
};

class KeyStore {
 public:
  // Called once per committed mutation, in revision order, after it is
  // durable and published (head_revision() covers it), with its event, its
  // audit record and the tables its writes touched, on the thread that
  // publishes, before Sync returns for it. Later publications wait for it,
  // so it must be quick. The tables may be more than the mutation's own
  // when a store cannot tell them apart (etcd: every revision of one batch
  // gets the batch's; after a catch-up from the rows, TableSet::All()),
  // never fewer.
  //
  // The rule, held by both stores and by the conformance suite: a listener
  // may read the store (Get, Scan, the *Latest reads, EventsAfter, audit,
  // Snapshot, Reachable, advisory rows) and none of those waits on the
  // listener's own thread; Sync from a listener would wait for the very
  // publication the listener holds up, so it is refused with
  // FAILED_PRECONDITION. Stores call their listener through
  // CallCommitListener, which marks the thread (InsideCommitListener).
  using CommitListener =
      std::function<void(const v1::KeyEvent&, const v1::AuditEvent&, TableSet written)>;

  virtual ~KeyStore() = default;

  // Random id made when the store was created. Revisions compare only within it.
  virtual const std::string& store_id() const = 0;

  // The last revision that is durable and published; 0 for a new store.
  virtual uint64_t head_revision() const = 0;

  // The revision the next mutation takes, as far as this store knows: one
  // past everything appended here.
  virtual uint64_t next_revision() const = 0;

  // Waits, briefly, until what builds read holds every revision this store
  // knows was committed, so that a build is not refused for reading stale
  // rows (etcd: another replica's commit a refused batch taught it about).
  // The core calls it before each build, holding none of its own locks;
  // every other call here answers without waiting on another replica.
  virtual void AwaitKnownRevisions() const {}

  // Commits `mutation` in order with the next revision, its event and its
  // audit record, and returns that revision; ABORTED (nothing written) when
  // mutation.revision is set and is not the next one, or a precondition does
  // not hold. It is not acknowledged (durable, published) until Sync covers it.
  virtual absl::StatusOr<uint64_t> Append(Mutation mutation) = 0;

  // Returns once `revision` and every revision before it are durable and
  // their events were passed to the commit listener, in order. ABORTED when
  // a store that commits in batches lost `revision`'s batch to a conflict
  // (build the mutation again). After a failed fsync the store refuses every
  // further Append and Sync (DATA_LOSS).
  virtual absl::Status Sync(uint64_t revision) = 0;

  // Append, then Sync.
  absl::StatusOr<uint64_t> Commit(Mutation mutation) {
    absl::StatusOr<uint64_t> revision = Append(std::move(mutation));
    if (!revision.ok()) return revision;
    if (absl::Status synced = Sync(*revision); !synced.ok()) return synced;
    return revision;
  }

  // Key usage (docs/design.md, "Usage"): advisory rows outside the revision
  // log, with no revision, event or audit record, and not synced, so a crash
  // may lose the last writes. Each process writes as one writer and owns
  // that writer's row of every key; it replaces its rows blindly (no read, no
  // precondition), so replicas never conflict over usage.
  //
  // The writer this process writes as. A store one process owns has one
  // writer. A replicated store lends each live replica a writer of its own
  // and lends a writer whose replica is gone to the next replica that asks,
  // rows included: rows per key stay bounded by the replicas that ever ran
  // at once. Call it before each batch of puts: it also keeps the loan alive.
  // ABORTED when the loan lapsed (a replica cut off from its cluster too
  // long): what the caller knows of its writer's rows is stale; ask again.
  virtual absl::StatusOr<std::string> UsageWriter() = 0;
  // Replaces `writer`'s row of each key (UsageRow::writer is ignored), split
  // as the store's limits on one write require. ABORTED, and nothing more
  // written, when this process no longer holds `writer` (a replica cut off
  // from its cluster longer than its loan): ask UsageWriter again and build
  // the rows from that writer's own.
  virtual absl::Status PutUsage(const std::string& writer, std::vector<UsageRow> rows) = 0;
  // Every writer's row of a key, as last written (a replicated store: as
  // this replica last heard from its cluster, a moment behind at most).
  virtual absl::StatusOr<std::vector<UsageRow>> GetUsage(std::string_view key_id) const = 0;
  // Deletes every writer's row of a key: for a key that was deleted.
  virtual absl::Status EraseUsage(std::string_view key_id) = 0;
  // Up to `limit` usage rows keyed after `after` (UsageRowKey; empty: from
  // the start), in key order, keyed by UsageRowKey: for copying a store.
  virtual absl::StatusOr<Page> ScanUsage(std::string_view after, size_t limit) const = 0;

  // Progress rows: where work that follows the log stands (the revision a
  // webhook has delivered up to, its retries). Advisory like usage: outside
  // the revision log, no event or audit record, not synced, so a crash may
  // lose the last writes and the work is done again (at least once).
  // nullopt deletes the row. With `duty` set, the write happens only while
  // this process holds that duty (Replicas::Lead), else ABORTED and nothing is
  // written: a replica whose duty lapsed unnoticed cannot put back an older
  // row over the new holder's.
  virtual absl::Status PutProgress(std::string_view key, std::optional<std::string> value,
                                   std::string_view duty) = 0;
  virtual absl::StatusOr<std::optional<std::string>> GetProgress(std::string_view key) const = 0;
  // Up to `limit` progress rows keyed after `after`, in key order: for
  // copying a store.
  virtual absl::StatusOr<Page> ScanProgress(std::string_view after, size_t limit) const = 0;

  virtual StoreStats stats() const = 0;

  // OK when the store can commit now; for health checks. A replicated store
  // asks its cluster (UNAVAILABLE without a quorum), and answers DATA_LOSS for
  // good once it missed revisions its log no longer holds (it must be
  // reopened); a local one is always reachable (its failures show on writes).
  virtual absl::Status Reachable() const { return absl::OkStatus(); }

  // What this store's replicas share while they live: receipts and duties
  // (replicas.h). Lives as long as the store.
  virtual Replicas& replicas() = 0;

  // The row, or nullopt when it does not exist. Reads `at` when given, the
  // head revision (durable, published) otherwise.
  virtual absl::StatusOr<std::optional<std::string>> Get(
      Table table, std::string_view key, const StoreSnapshot* at = nullptr) const = 0;

  // Up to `limit` rows whose key starts with `prefix` and sorts after `after`
  // (empty: from the start), in key order. Reads `at` when given, the head
  // revision otherwise.
  virtual absl::StatusOr<Page> Scan(Table table, std::string_view prefix, std::string_view after,
                                    size_t limit, const StoreSnapshot* at = nullptr) const = 0;

  // Hands `row` every row of `table` whose key sorts after `after` (empty:
  // from the start), in key order, until it returns false. The views last
  // only for the call. Reads `at` when given, the head revision otherwise.
  // For reads too large to copy row by row (a snapshot's million keys): the
  // embedded store reads in place, around its block cache; the default pages
  // through Scan.
  virtual absl::Status ForEach(
      Table table, std::string_view after, const StoreSnapshot* at,
      absl::FunctionRef<bool(std::string_view key, std::string_view value)> row) const;

  // Reads for building a mutation (through a Transaction): everything
  // appended, durable or not. A mutation that read an undurable change
  // commits after it, so it is never acknowledged before what it read.
  virtual absl::StatusOr<std::optional<std::string>> GetLatest(Table table,
                                                               std::string_view key) const = 0;
  virtual absl::StatusOr<Page> ScanLatest(Table table, std::string_view prefix,
                                          std::string_view after, size_t limit) const = 0;

  // Retained, published events with revision > `after`, in order, at most
  // `limit`.
  // OUT_OF_RANGE when some of them were already trimmed (resync by snapshot);
  // FAILED_PRECONDITION when `after` is ahead of the head revision.
  virtual absl::StatusOr<std::vector<v1::KeyEvent>> EventsAfter(uint64_t after,
                                                                size_t limit) const = 0;

  // Audit records of one project (empty id: those of no project), oldest
  // first, after revision `after`.
  virtual absl::StatusOr<std::vector<v1::AuditEvent>> AuditEvents(std::string_view project_id,
                                                                  uint64_t after,
                                                                  size_t limit) const = 0;

  // Audit records of every project, oldest first, after revision `after`:
  // the log webhooks follow. (An etcd store made before this log existed
  // lacks the records before it; webhooks deliver only what follows them.)
  virtual absl::StatusOr<std::vector<v1::AuditEvent>> AuditLog(uint64_t after,
                                                               size_t limit) const = 0;

  // A read view at the head revision: nothing appended but not yet durable
  // is in it.
  virtual std::unique_ptr<StoreSnapshot> Snapshot() = 0;

  // Replaces the commit listener. Call before concurrent use.
  virtual void SetCommitListener(CommitListener listener) = 0;
};

// Calls `listener` (when set) with the thread marked as inside it.
void CallCommitListener(const KeyStore::CommitListener& listener, const v1::KeyEvent& event,
                        const v1::AuditEvent& audit, TableSet written);
// Whether this thread is running a commit listener now (of any store).
bool InsideCommitListener();
// What Sync answers inside a commit listener (KeyStore::CommitListener).
absl::Status SyncInsideCommitListener();

// One mutation being built: the revision it is built for and reads that
// record what they saw as its preconditions. Not thread-safe; one builder
// uses it, then Finish hands its reads to the mutation.
class Transaction {
 public:
  explicit Transaction(const KeyStore& store) : store_(store), revision_(store.next_revision()) {}

  // The revision the mutation takes if it commits.
  uint64_t revision() const { return revision_; }

  // The row as the latest append left it, recorded as a precondition.
  absl::StatusOr<std::optional<std::string>> Get(Table table, std::string_view key);

  // Rows as the latest append left them. Not a precondition: guard the set
  // with a row (Table::kGuards) that every change to it writes, and Get it.
  absl::StatusOr<Page> Scan(Table table, std::string_view prefix, std::string_view after,
                            size_t limit) const {
    return store_.ScanLatest(table, prefix, after, limit);
  }

  // Stamps `m` with the revision and the preconditions read so far.
  void Finish(Mutation& m);

 private:
  const KeyStore& store_;
  const uint64_t revision_;
  std::vector<Precondition> reads_;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_STORE_KEY_STORE_H_
