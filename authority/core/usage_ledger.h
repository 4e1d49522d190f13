// Usage that sidecars report, summed in memory and written as this
// replica's own rows (docs/design.md, "Usage").
//
// Add is the report path: it sums a report into one of kShards maps by key
// id, each behind its own lock, and reads nothing from the store. Flush takes
// what was summed and writes, for each key, this process's running total
// (read from the store the first time, then kept here) plus what arrived
// since: blind puts of rows that only this process writes
// (KeyStore::PutUsage), so replicas never conflict and a flush costs one
// row per distinct key, however many reports named it. Read combines every
// writer's row of a key with what this process has not written yet, and
// counts each report once while a flush's rows land (see Read).
//
// A crash loses what was not flushed: at most one flush interval of this
// process's counts. Usage is advisory: a flush whose writer is lost part-way
// (on etcd, its lease lapsing between two of its transactions) counts the
// rows that landed before again under the next writer.
//
// One ledger per store handle: the writer belongs to the handle, so two
// ledgers on one handle would overwrite each other's rows. (A replica is a
// process with its own handle.)
//
// A UsageLedger is safe for concurrent access from multiple threads without
// any external synchronization.
#ifndef LATCHKEY_AUTHORITY_CORE_USAGE_LEDGER_H_
#define LATCHKEY_AUTHORITY_CORE_USAGE_LEDGER_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "authority/internal/records.pb.h"
#include "authority/store/key_store.h"
#include "common/mutex.h"
#include "latchkey/v1/key_sync.pb.h"

namespace latchkey {

// Reports about one key not written yet.
struct PendingUsage {
  struct Rejections {
    uint64_t count = 0;
    int64_t last_micros = 0;
  };
  uint64_t count = 0;
  int64_t last_used_micros = 0;
  uint64_t rejected_count = 0;
  int64_t last_rejected_micros = 0;
  // Of rejected_count, those reported before the key's revocation reached
  // this replica (UsageLedger::Revoked): not rejections since it.
  uint64_t rejected_before_revocation = 0;
  bool revocation_seen = false;  // Revoked was called (it may be, twice)
  // By sidecar, since the revocation when there was one, for a revoked key's "who still sends it"
  // (at most kMaxPendingSidecars; the counts above hold every rejection).
  absl::flat_hash_map<std::string, Rejections> rejected_by;
};

// Adds `more` into `into`.
void AddPending(PendingUsage& into, const PendingUsage& more);
// Adds unwritten reports to a key's usage. `revoked`: their rejections
// (but those from before the revocation) count as rejections since it, by
// sidecar.
void AddToRecord(internal::KeyUsageRecord& into, const PendingUsage& more, bool revoked);
// Adds another writer's row of the same key.
void MergeRecords(internal::KeyUsageRecord& into, const internal::KeyUsageRecord& row);

class UsageLedger {
 public:
  // `store` must outlive the ledger.
  explicit UsageLedger(KeyStore* store) : store_(store) {}

  // Adds one sidecar's report. Ids that are not key ids are skipped; times
  // after `now` count as `now`, so a sidecar's clock cannot pin a last use in
  // the future. The caller has checked the timestamps are valid.
  void Add(const v1::ReportUsageRequest& req, absl::Time now);

  // The key was revoked: what was added about it so far happened before.
  // Only the first call after a revocation counts (the authority that
  // revokes hears of it twice: from its commit and from the store).
  void Revoked(std::string_view key_id);

  // A revoked key that sidecars still sent, as one flush wrote it.
  struct StillSent {
    std::string key_id;
    uint64_t rejections = 0;  // since the revocation, in this flush
    // Who sent it since its revocation, most first, by this writer's counts.
    static constexpr size_t kMaxSidecars = 5;
    std::vector<std::string> sidecars;
  };
  // Writes everything added so far. On failure what it took is added back,
  // for the next flush. `still_sent`, when given, receives the revoked keys
  // whose rejections since their revocation this flush wrote.
  absl::Status Flush(std::vector<StillSent>* still_sent = nullptr)
      ABSL_LOCKS_EXCLUDED(flush_mu_, landing_mu_, state_mu_);

  // The key's usage: every writer's row plus what this process has not
  // written yet (`revoked`: see AddToRecord).
  // Counts each report once, however a flush's rows land meanwhile.
  absl::StatusOr<internal::KeyUsageRecord> Read(std::string_view key_id, bool revoked) const
      ABSL_LOCKS_EXCLUDED(landing_mu_, state_mu_);

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    mutable Mutex mu;
    absl::flat_hash_map<std::string, PendingUsage> keys ABSL_GUARDED_BY(mu);
  };
  Shard& ShardOf(std::string_view key_id) const;

  // Moves every shard's reports into one map.
  absl::flat_hash_map<std::string, PendingUsage> TakeAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mu_);
  // A failed flush: what it took goes back into the shards.
  void GiveBack(const absl::flat_hash_map<std::string, PendingUsage>& taken, bool writer_lost)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mu_);
  // This writer's row of `key_id` as last written: kept, or read once.
  absl::StatusOr<internal::KeyUsageRecord> OwnRow(const std::string& key_id,
                                                  const std::string& writer)
      ABSL_LOCKS_EXCLUDED(state_mu_);

  KeyStore* const store_;
  mutable std::array<Shard, kShards> shards_;

  // What Read takes from memory; `own` is this writer's row as last written
  // here, when this process has written the key's row since it took its
  // writer.
  struct Unwritten {
    uint64_t landings = 0;  // landings_ when looked at
    std::string writer;
    std::optional<internal::KeyUsageRecord> own;
    PendingUsage pending;  // taken by a flush under way, and added since
  };
  Unwritten Look(const std::string& key_id) const ABSL_LOCKS_EXCLUDED(state_mu_);
  // The store's rows of the key (but this writer's when `seen.own` stands
  // for it) plus what `seen` holds.
  absl::StatusOr<internal::KeyUsageRecord> Combine(const std::string& key_id, const Unwritten& seen,
                                                   bool revoked) const;

  // Lock order: flush_mu_, landing_mu_, state_mu_, a shard's mu.
  Mutex flush_mu_;  // one flush at a time
  // Held while a flush's rows go into the store and until this process
  // records them as written. A Read that must take this writer's row from
  // the store, and saw rows landing (landings_), takes it to see them
  // either before or after, never half-way.
  mutable Mutex landing_mu_;
  mutable Mutex state_mu_;
  std::string writer_ ABSL_GUARDED_BY(state_mu_);  // the writer totals_ belong to
  // This writer's rows as this process last wrote them (about 100 bytes a key).
  absl::flat_hash_map<std::string, internal::KeyUsageRecord> totals_ ABSL_GUARDED_BY(state_mu_);
  // What the flush in progress took from the shards, until its rows land.
  absl::flat_hash_map<std::string, PendingUsage> flushing_ ABSL_GUARDED_BY(state_mu_);
  // Bumped when a flush begins putting rows and again when it is done with
  // them: odd while rows may be in the store that totals_ does not hold.
  uint64_t landings_ ABSL_GUARDED_BY(state_mu_) = 0;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_CORE_USAGE_LEDGER_H_
