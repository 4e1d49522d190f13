// The etcd store's one class, whose work is spread over the files of this
// folder by job (docs/design.md, "The etcd store"):
//   etcd_store.cc      opening a store; reads at a revision; advisory rows
//   group_commit.cc    Append and Sync: a replica's mutations in one etcd
//                      transaction per batch
//   log_watch.cc       the watch of the log that publishes every replica's
//                      revisions in order and keeps the local copy of rows
//   internal/replica_leases.h  what a replica holds through leases
//   internal/layout.h  which key holds what
//   internal/etcd_client.h     etcd's gRPC API, member by member
//   import.cc          copying another store in (ImportIntoEtcd)
//
// Consecutive mutations of one replica (revisions R..S) are one etcd
// transaction (group commit): if P meta/head still holds R - 1 and every row
// read still holds what was read, write S to P meta/head, the rows, and each
// revision's log and audit records. etcd acknowledges a transaction once a
// quorum has it on disk, so Sync's answer is durable. Publication follows
// etcd's own watch of P log/ through P t/: every replica hears every
// revision, its own and the others', in order, with the rows it wrote, and
// moves its head (and the etcd revision its plain reads use) only then. The
// same watch keeps a copy of the rows in memory, which builds read (see
// "Builds read a local copy" under "The etcd store" in docs/design.md).
#ifndef LATCHKEY_AUTHORITY_STORE_ETCD_INTERNAL_ETCD_STORE_IMPL_H_
#define LATCHKEY_AUTHORITY_STORE_ETCD_INTERNAL_ETCD_STORE_IMPL_H_

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "authority/internal/records.pb.h"
#include "authority/store/etcd/etcd_store.h"
#include "authority/store/etcd/internal/etcd_client.h"
#include "authority/store/etcd/internal/layout.h"
#include "authority/store/etcd/internal/replica_leases.h"
#include "authority/store/key_store.h"
#include "common/mutex.h"

namespace latchkey {

class EtcdSnapshot : public StoreSnapshot {
 public:
  EtcdSnapshot(uint64_t revision, int64_t etcd_revision)
      : revision_(revision), etcd_revision_(etcd_revision) {}
  uint64_t revision() const override { return revision_; }
  int64_t etcd_revision() const { return etcd_revision_; }

 private:
  const uint64_t revision_;
  const int64_t etcd_revision_;
};

class EtcdStore : public KeyStore {
 public:
  // `head` holds at `head_etcd_revision`, where `rows` (every key under
  // P t/) were read; the watch goes on from there.
  EtcdStore(std::unique_ptr<EtcdClient> client, const EtcdStoreOptions& options,
            std::string store_id, uint64_t head, int64_t head_etcd_revision,
            std::map<std::string, std::string> rows);
  ~EtcdStore() override;

  const std::string& store_id() const override { return store_id_; }
  uint64_t head_revision() const override { return head_.load(std::memory_order_acquire); }

  // group_commit.cc
  uint64_t next_revision() const override;
  void AwaitKnownRevisions() const override;
  absl::StatusOr<uint64_t> Append(Mutation m) override;
  absl::Status Sync(uint64_t revision) override;

  // etcd_store.cc
  absl::StatusOr<std::optional<std::string>> Get(Table table, std::string_view key,
                                                 const StoreSnapshot* at) const override;
  absl::StatusOr<Page> Scan(Table table, std::string_view prefix, std::string_view after,
                            size_t limit, const StoreSnapshot* at) const override;
  absl::StatusOr<std::vector<v1::KeyEvent>> EventsAfter(uint64_t after,
                                                        size_t limit) const override;
  absl::StatusOr<std::vector<v1::AuditEvent>> AuditEvents(std::string_view project_id,
                                                          uint64_t after,
                                                          size_t limit) const override;
  absl::StatusOr<std::vector<v1::AuditEvent>> AuditLog(uint64_t after, size_t limit) const override;
  std::unique_ptr<StoreSnapshot> Snapshot() override;
  void SetCommitListener(CommitListener listener) override;
  StoreStats stats() const override;
  absl::Status Reachable() const override;

  // Advisory rows (etcd_store.cc) and what the replica leases hold.
  absl::StatusOr<std::string> UsageWriter() override { return leases_.UsageWriter(); }
  absl::Status PutUsage(const std::string& writer, std::vector<UsageRow> rows) override;
  absl::StatusOr<std::vector<UsageRow>> GetUsage(std::string_view key_id) const override;
  absl::StatusOr<Page> ScanUsage(std::string_view after, size_t limit) const override;
  absl::Status EraseUsage(std::string_view key_id) override;
  absl::Status PutProgress(std::string_view key, std::optional<std::string> value,
                           std::string_view duty) override;
  absl::StatusOr<Page> ScanProgress(std::string_view after, size_t limit) const override;
  absl::StatusOr<std::optional<std::string>> GetProgress(std::string_view key) const override;
  Replicas& replicas() override { return leases_; }

  // log_watch.cc: builds read the copy (and this replica's writes not yet
  // in it); no etcd call.
  absl::StatusOr<std::optional<std::string>> GetLatest(Table table,
                                                       std::string_view key) const override;
  absl::StatusOr<Page> ScanLatest(Table table, std::string_view prefix, std::string_view after,
                                  size_t limit) const override;

 private:
  // A mutation appended but not yet committed is pending: queued, or in the
  // batch in flight (at most one).
  struct Pending {
    uint64_t revision = 0;
    internal::LogRecord log;  // event and audit record; the nonce is the batch's
    std::vector<Write> writes;
    std::vector<Precondition> reads;  // those etcd checks
  };

  // etcd_store.cc
  // The etcd revision a read at `at` (the head when null) uses.
  int64_t EtcdRevisionOf(const StoreSnapshot* at) const ABSL_LOCKS_EXCLUDED(published_mu_);
  // `etcd_revision` 0 reads the latest; the read ends by `deadline` at the
  // latest.
  absl::StatusOr<std::optional<std::string>> GetAt(
      const std::string& key, int64_t etcd_revision,
      absl::Time deadline = absl::InfiniteFuture()) const;
  // Rows under `folder` keyed after `start`, up to `limit`, keys relative to
  // `folder` (rows of a table, progress rows).
  absl::StatusOr<Page> ScanAt(const std::string& folder, const std::string& start,
                              const std::string& end, size_t limit, int64_t etcd_revision) const;
  // Where a scan of `prefix` resuming after the row `after` (empty: from the
  // start) begins: the smallest key greater than `after`.
  std::string ScanStart(Table table, std::string_view prefix, std::string_view after) const;
  // Up to `limit` audit records under `folder` (keyed by decimal revision)
  // after revision `after`, at the head.
  absl::StatusOr<std::vector<v1::AuditEvent>> ReadAudit(const std::string& folder, uint64_t after,
                                                        size_t limit) const;

  // group_commit.cc
  uint64_t NextRevision() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(batch_mu_);
  // Sends what is queued (up to etcd's limits per transaction) and records
  // the outcome for the appenders' Syncs. Called holding batch_mu_, which it
  // releases while etcd answers.
  void Flush() ABSL_EXCLUSIVE_LOCKS_REQUIRED(batch_mu_);
  // One etcd transaction for `batch` (consecutive revisions): true once etcd
  // has it, false when the head moved or a row read changed.
  absl::StatusOr<bool> SendBatch(std::vector<Pending>& batch) ABSL_LOCKS_EXCLUDED(batch_mu_);
  // Raises known_committed_ to `revision`.
  void NoteCommitted(uint64_t revision);

  // log_watch.cc
  // The watcher thread: follows P log/ through P t/ from just after the
  // head, keeps the copy and publishes each revision in order. Reconnects
  // (to the next member) when the stream breaks.
  void WatchLog() ABSL_LOCKS_EXCLUDED(mu_);
  // One answer of the watch, applied to the copy and published.
  absl::Status Apply(const etcdserverpb::WatchResponse& resp) ABSL_LOCKS_EXCLUDED(mu_);
  // What the watch would have brought since the head, read instead.
  absl::Status CatchUp() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits up to `budget` for the head to reach `revision`, which etcd has
  // committed; false if it did not.
  bool WaitPublished(uint64_t revision, absl::Duration budget) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets this replica's committed writes the copy holds as of `head`.
  void DropCopiedWrites(uint64_t head) ABSL_EXCLUSIVE_LOCKS_REQUIRED(batch_mu_);
  // Moves the head to `revision`, whose state etcd holds at `etcd_revision`
  // (the etcd revision only ever moves forward).
  void MoveHead(uint64_t revision, int64_t etcd_revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Revisions this replica missed left the log: it never publishes again,
  // and says why (Reachable) until it is restarted.
  absl::Status StopPublishing(absl::Status why) ABSL_LOCKS_EXCLUDED(published_mu_);

  const std::unique_ptr<EtcdClient> client_;
  const EtcdLayout layout_;
  const uint64_t retention_;
  const std::string store_id_;
  ReplicaLeases leases_;

  // Lock order: mu_, then batch_mu_, then published_mu_. ReplicaLeases'
  // locks come after all three (a listener, under mu_, may share receipts)
  // and take no lock of the store.
  //
  // mu_ is the publisher's: the watch holds it while it applies an answer
  // and calls the commit listener, and Sync waits on it for publication.
  // published_mu_ guards only what readers need of the head, so that a
  // read, a snapshot or a health check never waits for the publisher (nor
  // deadlocks inside the listener, which runs under mu_).
  mutable Mutex mu_;
  mutable Mutex batch_mu_ ABSL_ACQUIRED_AFTER(mu_);
  mutable Mutex published_mu_ ABSL_ACQUIRED_AFTER(mu_, batch_mu_);

  // The revisions a replica keeps track of. Always
  //   head_ <= known_committed_, last_committed_ <= last_appended_,
  //   last_committed_ <= known_committed_ once its batch is answered.
  //
  // head_: published. Its state is in the copy and head_revision() answers
  //   it; the listener is called for it right after. Written under mu_ and
  //   published_mu_ by the watch, read anywhere.
  // head_etcd_revision_: the etcd revision at which head_'s state is read
  //   (what reads at the head and snapshots pass to etcd).
  // known_committed_: the newest revision known committed in etcd by any
  //   replica: heard from etcd (a refused batch's answer names the head) or
  //   by the watch. A build for a revision at or below it is refused, so the
  //   next one starts past it.
  // last_appended_: the revision of the last pending mutation.
  // last_committed_: the last revision this replica's own batches committed.
  std::atomic<uint64_t> head_;
  int64_t head_etcd_revision_ ABSL_GUARDED_BY(published_mu_);
  std::atomic<uint64_t> known_committed_;
  uint64_t last_appended_ ABSL_GUARDED_BY(batch_mu_) = 0;
  uint64_t last_committed_ ABSL_GUARDED_BY(batch_mu_) = 0;

  // Publication (log_watch.cc).
  mutable CondVar published_;
  CommitListener listener_ ABSL_GUARDED_BY(mu_);
  absl::Status watch_error_ ABSL_GUARDED_BY(mu_);
  absl::Status cannot_publish_ ABSL_GUARDED_BY(published_mu_);  // see StopPublishing
  grpc::ClientContext* watch_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t watch_member_ ABSL_GUARDED_BY(mu_) = 0;  // the member watch_ctx_'s stream is on
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // How long a build waits for the copy to catch up (AwaitKnownRevisions).
  static constexpr absl::Duration kCatchUpWait = absl::Seconds(1);
  // How long the watch may bring nothing while a committed revision waits
  // for it (WaitPublished); on loopback it brings one within milliseconds.
  // Shorter when calls have already left the watch's member as gone.
  static constexpr absl::Duration kWatchSilence = absl::Milliseconds(500);
  static constexpr absl::Duration kWatchGrace = absl::Milliseconds(50);

  // Group commit (group_commit.cc).
  static constexpr size_t kMaxBatch = 32;
  CondVar batch_done_;
  std::deque<Pending> queued_ ABSL_GUARDED_BY(batch_mu_);
  bool flushing_ ABSL_GUARDED_BY(batch_mu_) = false;
  size_t pending_ ABSL_GUARDED_BY(batch_mu_) = 0;
  // Revisions of lost batches, until their appenders' Syncs take the answer.
  std::map<uint64_t, absl::Status> failed_ ABSL_GUARDED_BY(batch_mu_);
  // What this replica's mutations wrote that the copy does not hold yet,
  // by etcd key: (value, revision of the write). Pending when that revision
  // is after last_committed_, committed (and on its way through the watch)
  // otherwise.
  std::map<std::string, std::pair<std::optional<std::string>, uint64_t>> overlay_
      ABSL_GUARDED_BY(batch_mu_);
  // Every row (P t/...) as of the published head (and usage rows as the
  // watch brought them), kept by the watch: what builds read.
  std::map<std::string, std::string> copy_ ABSL_GUARDED_BY(batch_mu_);

  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> conflicts_{0};
  std::atomic<uint64_t> advisory_writes_{0};
  std::atomic<uint64_t> txns_{0};

  // Last: it reads and writes through the members above.
  std::thread watcher_;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_STORE_ETCD_INTERNAL_ETCD_STORE_IMPL_H_
