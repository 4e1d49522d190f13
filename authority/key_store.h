// The authority's state, behind one small interface.
//
// A KeyStore holds tables of opaque rows plus two logs: the event log that
// sidecars follow and the audit log people read. Every change is a Mutation,
// appended atomically with the next revision, its event and its audit record.
// Append makes it visible to reads; Sync makes it durable and only then hands
// its event to the commit listener (and so to sidecars). Concurrent Syncs
// share one fsync (group commit), so a caller that serializes Appends need
// not hold its lock while waiting for the disk. The embedded RocksDB store is the default;
// nothing outside rocksdb_store.cc depends on RocksDB types, so a replicated
// store (etcd) can put the same contract on shared state.
//
// A KeyStore is safe for concurrent access from multiple threads without any
// external synchronization. Commits are totally ordered by revision.
#ifndef LATCHKEY_AUTHORITY_KEY_STORE_H_
#define LATCHKEY_AUTHORITY_KEY_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "latchkey/v1/key_sync.pb.h"
#include "latchkey/v1/resources.pb.h"

namespace latchkey {

enum class Table {
  kProjects,     // project id -> ProjectRecord
  kKeys,         // key id -> KeyRecord
  kProjectKeys,  // project id + key id -> "" (index for ListKeys)
  kDigests,      // digest -> key id (every digest a key has, current or retired)
  kPrincipals,   // principal id -> PrincipalRecord (with its token's digest)
  kUsage,        // key id -> internal.KeyUsageRecord (advisory, see WriteAdvisory)
};

// One row to write; no value deletes the row. It is not an error to delete a
// row that does not exist.
struct Write {
  Table table;
  std::string key;
  std::optional<std::string> value;
};

// Everything one change does. Commit fills in the revision of `event` and
// `audit`; `event` may carry no changes (sidecars still see the revision).
struct Mutation {
  std::vector<Write> writes;
  v1::KeyEvent event;
  v1::AuditEvent audit;
};

// What a store has done since it opened; for tests and metrics.
struct StoreStats {
  uint64_t commits = 0;  // mutations appended
  uint64_t syncs = 0;    // fsyncs of the log (group commit shares one among many)
  uint64_t advisory_writes = 0;
};

struct Row {
  std::string key;
  std::string value;
};

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
  // durable, with its event and audit record. Runs while later commits wait,
  // so it must be quick.
  using CommitListener = std::function<void(const v1::KeyEvent&, const v1::AuditEvent&)>;

  virtual ~KeyStore() = default;

  // Random id made when the store was created. Revisions compare only within it.
  virtual const std::string& store_id() const = 0;

  // The last revision that is durable and published; 0 for a new store.
  virtual uint64_t head_revision() const = 0;

  // The revision the last Append took: written and readable, perhaps not yet
  // durable. A caller that serializes its Appends knows its next one takes
  // last_appended_revision() + 1.
  virtual uint64_t last_appended_revision() const = 0;

  // Writes `mutation` atomically with the next revision, its event and its
  // audit record, and returns that revision. Reads see it at once; it is not
  // acknowledged (durable, published) until Sync covers it.
  virtual absl::StatusOr<uint64_t> Append(Mutation mutation) = 0;

  // Returns once `revision` and every revision before it are durable and
  // their events were passed to the commit listener, in order. After a failed
  // fsync the store refuses every further Append and Sync (DATA_LOSS).
  virtual absl::Status Sync(uint64_t revision) = 0;

  // Append, then Sync.
  absl::StatusOr<uint64_t> Commit(Mutation mutation) {
    absl::StatusOr<uint64_t> revision = Append(std::move(mutation));
    if (!revision.ok()) return revision;
    if (absl::Status synced = Sync(*revision); !synced.ok()) return synced;
    return revision;
  }

  // Writes rows outside the revision log: no revision, event or audit record,
  // and not synced. Only for advisory data (key usage), where losing the last
  // few seconds to a crash is acceptable.
  virtual absl::Status WriteAdvisory(std::vector<Write> writes) = 0;

  virtual StoreStats stats() const = 0;

  // The row, or nullopt when it does not exist. Reads `at` when given.
  virtual absl::StatusOr<std::optional<std::string>> Get(
      Table table, std::string_view key, const StoreSnapshot* at = nullptr) const = 0;

  // Up to `limit` rows whose key starts with `prefix` and sorts after `after`
  // (empty: from the start), in key order. Reads `at` when given.
  virtual absl::StatusOr<Page> Scan(Table table, std::string_view prefix, std::string_view after,
                                    size_t limit, const StoreSnapshot* at = nullptr) const = 0;

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

  // A read view at the head revision, with nothing appended but not yet
  // durable in it (it syncs first when it must).
  virtual std::unique_ptr<StoreSnapshot> Snapshot() = 0;

  // Replaces the commit listener. Call before concurrent use.
  virtual void SetCommitListener(CommitListener listener) = 0;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_KEY_STORE_H_
