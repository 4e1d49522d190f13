// The embedded RocksDB KeyStore (docs/design.md, "The embedded store"); how
// it lays out its data is in internal/layout.h.
#include "authority/store/rocksdb/rocksdb_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/utilities/options_util.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <filesystem>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "authority/store/rocksdb/internal/layout.h"
#include "authority/store/rocksdb/internal/rocks_status.h"
#include "common/key_format.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/strings.h"

namespace latchkey {
namespace {

// A RocksDB snapshot taken right after one revision's write: the state of
// exactly that revision, shared by every reader of it.
class RocksView {
 public:
  RocksView(rocksdb::DB* db, uint64_t revision)
      : db_(db), snap_(db->GetSnapshot()), revision_(revision) {}
  ~RocksView() { db_->ReleaseSnapshot(snap_); }
  RocksView(const RocksView&) = delete;
  RocksView& operator=(const RocksView&) = delete;

  uint64_t revision() const { return revision_; }
  const rocksdb::Snapshot* get() const { return snap_; }

 private:
  rocksdb::DB* const db_;
  const rocksdb::Snapshot* const snap_;
  const uint64_t revision_;
};

class RocksSnapshot : public StoreSnapshot {
 public:
  explicit RocksSnapshot(std::shared_ptr<const RocksView> view) : view_(std::move(view)) {}
  uint64_t revision() const override { return view_->revision(); }
  const rocksdb::Snapshot* get() const { return view_->get(); }

 private:
  const std::shared_ptr<const RocksView> view_;
};

class RocksDbStore : public KeyStore {
 public:
  RocksDbStore(std::unique_ptr<rocksdb::DB> db, std::vector<rocksdb::ColumnFamilyHandle*> cfs,
               std::string store_id, uint64_t head, const RocksDbStoreOptions& options)
      : db_(std::move(db)),
        cfs_(std::move(cfs)),
        store_id_(std::move(store_id)),
        retention_(options.event_retention),
        group_commit_(options.group_commit && options.sync),
        sync_each_(options.sync && !options.group_commit),
        head_(head),
        head_view_(std::make_shared<RocksView>(db_.get(), head)),
        appended_(head) {}

  ~RocksDbStore() override {
    pending_.clear();
    head_view_.reset();
    for (auto* cf : cfs_) db_->DestroyColumnFamilyHandle(cf);
    db_->Close().PermitUncheckedError();
  }

  const std::string& store_id() const override { return store_id_; }

  uint64_t head_revision() const override { return head_.load(std::memory_order_acquire); }

  uint64_t next_revision() const override { return appended_.load(std::memory_order_acquire) + 1; }

  absl::StatusOr<uint64_t> Append(Mutation m) override {
    MutexLock lock(&mu_);
    if (!broken_.ok()) return broken_;
    const uint64_t revision = appended_.load(std::memory_order_relaxed) + 1;
    if (absl::Status held = CheckPreconditions(m, revision); !held.ok()) {
      conflicts_.fetch_add(1, std::memory_order_relaxed);
      return held;
    }
    m.event.set_revision(revision);
    m.audit.set_revision(revision);
    rocksdb::WriteBatch batch;
    for (const Write& w : m.writes) {
      rocksdb::ColumnFamilyHandle* cf = cfs_[CfOf(w.table)];
      rocksdb::Status s = w.value ? batch.Put(cf, w.key, *w.value) : batch.Delete(cf, w.key);
      if (!s.ok()) return FromRocks(s, "batch");
    }
    const std::string rev_key = EncodeRevision(revision);
    rocksdb::Status s = batch.Put(cfs_[kMeta], kRevisionKey, rev_key);
    if (s.ok()) s = batch.Put(cfs_[kCfEvents], rev_key, m.event.SerializeAsString());
    if (s.ok()) {
      const std::string audit = m.audit.SerializeAsString();
      s = batch.Put(cfs_[kCfAudit], AuditKey(m.audit.project_id(), revision), audit);
      if (s.ok()) s = batch.Put(cfs_[kCfAuditLog], rev_key, audit);
    }
    if (const uint64_t leaving = EventLeavingAt(revision, retention_); s.ok() && leaving > 0) {
      s = batch.Delete(cfs_[kCfEvents], EncodeRevision(leaving));
    }
    if (!s.ok()) return FromRocks(s, "batch");
    rocksdb::WriteOptions wo;
    wo.sync = sync_each_;
    absl::Status written = FromRocks(db_->Write(wo, &batch), "commit");
    if (!written.ok()) return written;
    if (sync_each_) syncs_.fetch_add(1, std::memory_order_relaxed);
    appended_.store(revision, std::memory_order_release);
    commits_.fetch_add(1, std::memory_order_relaxed);
    // The view is taken before any later append can write: it holds exactly
    // this revision, and becomes the head view once the revision is durable.
    pending_.push_back({std::move(m.event), std::move(m.audit), TableSet::Of(m.writes),
                        std::make_shared<RocksView>(db_.get(), revision)});
    return revision;
  }

  absl::Status Sync(uint64_t revision) override {
    if (InsideCommitListener()) return SyncInsideCommitListener();
    MutexLock lock(&sync_mu_);
    while (head_revision() < revision) {
      if (syncing_) {
        sync_done_.Wait(&sync_mu_);
        continue;
      }
      // This caller syncs for everyone appended so far.
      syncing_ = true;
      const uint64_t target = appended_.load(std::memory_order_acquire);
      sync_mu_.Unlock();
      const rocksdb::Status fsynced = FsyncWal();
      sync_mu_.Lock();
      syncing_ = false;
      sync_done_.SignalAll();
      if (!fsynced.ok()) {
        MutexLock append(&mu_);
        Break(fsynced);
        return broken_;
      }
      PublishUpTo(target);
    }
    MutexLock append(&mu_);
    return broken_;
  }

  // One process owns the database: one writer, the same after a restart, so
  // the rows a process left are the next one's own.
  absl::StatusOr<std::string> UsageWriter() override { return std::string(kUsageWriter); }

  absl::Status PutUsage(const std::string& writer, std::vector<UsageRow> rows) override {
    if (writer != kUsageWriter)
      return absl::AbortedError("usage writer " + writer + " is not ours");
    rocksdb::WriteBatch batch;
    for (const UsageRow& row : rows) {
      rocksdb::Status s = batch.Put(cfs_[kCfUsage], UsageRowKey(row.key_id, writer), row.value);
      if (!s.ok()) return FromRocks(s, "batch");
    }
    absl::Status written = FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "write");
    if (written.ok()) advisory_writes_.fetch_add(1, std::memory_order_relaxed);
    return written;
  }

  absl::StatusOr<std::vector<UsageRow>> GetUsage(std::string_view key_id) const override {
    std::vector<UsageRow> rows;
    absl::Status s =
        ForEachUsageRow(key_id, [&](const rocksdb::Slice& key, const rocksdb::Slice& value) {
          rows.push_back(UsageRow{std::string(key_id),
                                  UsageWriterOf(std::string_view(key.data(), key.size()), key_id),
                                  value.ToString()});
        });
    if (!s.ok()) return s;
    return rows;
  }

  absl::StatusOr<Page> ScanUsage(std::string_view after, size_t limit) const override {
    return ScanCf(rocksdb::ReadOptions(), cfs_[kCfUsage], "", after, limit);
  }

  absl::Status EraseUsage(std::string_view key_id) override {
    rocksdb::WriteBatch batch;
    absl::Status s = ForEachUsageRow(key_id, [&](const rocksdb::Slice& key, const rocksdb::Slice&) {
      batch.Delete(cfs_[kCfUsage], key).PermitUncheckedError();
    });
    if (!s.ok()) return s;
    return FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "write");
  }

  // One process owns the store: it holds every duty.
  absl::Status PutProgress(std::string_view key, std::optional<std::string> value,
                           std::string_view /*duty*/) override {
    const rocksdb::Status s =
        value ? db_->Put(rocksdb::WriteOptions(), cfs_[kCfProgress], key, *value)
              : db_->Delete(rocksdb::WriteOptions(), cfs_[kCfProgress], key);
    absl::Status written = FromRocks(s, "write");
    if (written.ok()) advisory_writes_.fetch_add(1, std::memory_order_relaxed);
    return written;
  }

  absl::StatusOr<Page> ScanProgress(std::string_view after, size_t limit) const override {
    return ScanCf(rocksdb::ReadOptions(), cfs_[kCfProgress], "", after, limit);
  }

  absl::StatusOr<std::optional<std::string>> GetProgress(std::string_view key) const override {
    std::string value;
    const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cfs_[kCfProgress], key, &value);
    if (s.IsNotFound()) return std::nullopt;
    if (!s.ok()) return FromRocks(s, "read");
    return value;
  }

  Replicas& replicas() override { return replicas_; }

  StoreStats stats() const override {
    return StoreStats{
        commits_.load(std::memory_order_relaxed), conflicts_.load(std::memory_order_relaxed),
        syncs_.load(std::memory_order_relaxed), advisory_writes_.load(std::memory_order_relaxed)};
  }

  absl::StatusOr<std::optional<std::string>> Get(Table table, std::string_view key,
                                                 const StoreSnapshot* at) const override {
    std::shared_ptr<const RocksView> head;
    return GetCf(ReadAtOrHead(at, head), cfs_[CfOf(table)], key);
  }

  absl::StatusOr<Page> Scan(Table table, std::string_view prefix, std::string_view after,
                            size_t limit, const StoreSnapshot* at) const override {
    std::shared_ptr<const RocksView> head;
    return ScanCf(ReadAtOrHead(at, head), cfs_[CfOf(table)], prefix, after, limit);
  }

  absl::Status ForEach(
      Table table, std::string_view after, const StoreSnapshot* at,
      absl::FunctionRef<bool(std::string_view key, std::string_view value)> row) const override {
    std::shared_ptr<const RocksView> head;
    rocksdb::ReadOptions ro = ReadAtOrHead(at, head);
    // A read this large would only push everything else out of the block
    // cache, and every block it read out again.
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[CfOf(table)]));
    it->Seek(after);
    if (!after.empty() && it->Valid() && it->key() == after) it->Next();
    for (; it->Valid(); it->Next()) {
      if (!row(it->key().ToStringView(), it->value().ToStringView())) break;
    }
    return FromRocks(it->status(), "scan");
  }

  absl::StatusOr<std::optional<std::string>> GetLatest(Table table,
                                                       std::string_view key) const override {
    return GetCf(rocksdb::ReadOptions(), cfs_[CfOf(table)], key);
  }

  absl::StatusOr<Page> ScanLatest(Table table, std::string_view prefix, std::string_view after,
                                  size_t limit) const override {
    return ScanCf(rocksdb::ReadOptions(), cfs_[CfOf(table)], prefix, after, limit);
  }

  absl::StatusOr<std::vector<v1::KeyEvent>> EventsAfter(uint64_t after,
                                                        size_t limit) const override {
    const uint64_t head = head_revision();
    if (after > head) {
      return absl::FailedPreconditionError(
          StrCat("revision ", after, " is ahead of this store's head ", head));
    }
    // Appends trim as they go, durable or not: the window follows the last
    // append, not the head.
    const uint64_t appended = appended_.load(std::memory_order_acquire);
    const uint64_t oldest_retained = OldestRetained(appended, retention_);
    if (after + 1 < oldest_retained) {
      return absl::OutOfRangeError(StrCat("events after ", after, " were trimmed"));
    }
    absl::StatusOr<Page> page =
        ScanCf(rocksdb::ReadOptions(), cfs_[kCfEvents], "", EncodeRevision(after), limit);
    if (!page.ok()) return page.status();
    std::vector<v1::KeyEvent> events;
    events.reserve(page->rows.size());
    if (!page->rows.empty() && DecodeRevision(page->rows.front().key) != after + 1) {
      // Trimmed between the check above and the scan: never hand out a gap.
      return absl::OutOfRangeError(StrCat("events after ", after, " were trimmed"));
    }
    for (const Row& row : page->rows) {
      if (DecodeRevision(row.key) > head) break;  // appended, not yet durable
      if (!events.emplace_back().ParseFromString(row.value)) {
        return absl::DataLossError(StrCat("event ", DecodeRevision(row.key)));
      }
    }
    return events;
  }

  absl::StatusOr<std::vector<v1::AuditEvent>> AuditEvents(std::string_view project_id,
                                                          uint64_t after,
                                                          size_t limit) const override {
    const std::string prefix = StrCat(project_id, "/");
    std::shared_ptr<const RocksView> head;
    const rocksdb::ReadOptions ro = ReadAtOrHead(nullptr, head);
    absl::StatusOr<Page> page =
        ScanCf(ro, cfs_[kCfAudit], prefix, after == 0 ? "" : AuditKey(project_id, after), limit);
    if (!page.ok()) return page.status();
    std::vector<v1::AuditEvent> events;
    for (const Row& row : page->rows) {
      if (!events.emplace_back().ParseFromString(row.value)) {
        return absl::DataLossError("audit record");
      }
    }
    return events;
  }

  absl::StatusOr<std::vector<v1::AuditEvent>> AuditLog(uint64_t after,
                                                       size_t limit) const override {
    std::shared_ptr<const RocksView> head;
    const rocksdb::ReadOptions ro = ReadAtOrHead(nullptr, head);
    absl::StatusOr<Page> page =
        ScanCf(ro, cfs_[kCfAuditLog], "", after == 0 ? "" : EncodeRevision(after), limit);
    if (!page.ok()) return page.status();
    std::vector<v1::AuditEvent> records;
    for (const Row& row : page->rows) {
      if (!records.emplace_back().ParseFromString(row.value)) {
        return absl::DataLossError(StrCat("audit record ", DecodeRevision(row.key)));
      }
    }
    return records;
  }

  std::unique_ptr<StoreSnapshot> Snapshot() override {
    return std::make_unique<RocksSnapshot>(HeadView());
  }

  void SetCommitListener(CommitListener listener) override {
    MutexLock lock(&sync_mu_);
    listener_ = std::move(listener);
  }

 private:
  struct Published {
    v1::KeyEvent event;
    v1::AuditEvent audit;
    TableSet written;
    std::shared_ptr<const RocksView> view;  // the state at event.revision()
  };

  // ABORTED unless `m` may take `revision`: built for it (or for any), and
  // every row it read still holds what it read.
  absl::Status CheckPreconditions(const Mutation& m, uint64_t revision) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (m.revision != 0 && m.revision != revision) {
      return absl::AbortedError(StrCat("revision ", m.revision, " was taken by another commit"));
    }
    for (const Precondition& read : m.reads) {
      absl::StatusOr<std::optional<std::string>> now = GetLatest(read.table, read.key);
      if (!now.ok()) return now.status();
      if (*now != read.value) {
        return absl::AbortedError("a row this change read was changed by another commit");
      }
    }
    return absl::OkStatus();
  }

  std::shared_ptr<const RocksView> HeadView() const {
    MutexLock lock(&view_mu_);
    return head_view_;
  }

  // Reads at `at`, or at the head when it is null: then `head` pins the
  // head's view for as long as the read lasts.
  rocksdb::ReadOptions ReadAtOrHead(const StoreSnapshot* at,
                                    std::shared_ptr<const RocksView>& head) const {
    rocksdb::ReadOptions ro;
    if (at != nullptr) {
      ro.snapshot = static_cast<const RocksSnapshot*>(at)->get();
    } else {
      head = HeadView();
      ro.snapshot = head->get();
    }
    return ro;
  }

  absl::StatusOr<std::optional<std::string>> GetCf(const rocksdb::ReadOptions& ro,
                                                   rocksdb::ColumnFamilyHandle* cf,
                                                   std::string_view key) const {
    std::string value;
    rocksdb::Status s = db_->Get(ro, cf, key, &value);
    if (s.IsNotFound()) return std::nullopt;
    if (!s.ok()) return FromRocks(s, "get");
    return value;
  }

  // Makes every append so far durable: one fsync of the WAL, which does not
  // block appends running meanwhile.
  rocksdb::Status FsyncWal() {
    if (!group_commit_) return rocksdb::Status::OK();  // appends synced themselves, or never
    syncs_.fetch_add(1, std::memory_order_relaxed);
    return db_->SyncWAL();
  }

  // After a failed fsync what was appended may or may not be on disk, so the
  // store promises nothing more: every later Append and Sync fails.
  void Break(const rocksdb::Status& fsync) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    broken_ = absl::DataLossError(StrCat("fsync of the WAL failed: ", fsync.ToString()));
  }

  std::vector<Published> TakePendingUpTo(uint64_t target) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<Published> ready;
    while (!pending_.empty() && pending_.front().event.revision() <= target) {
      ready.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
    return ready;
  }

  // Moves the head (and the view plain reads use), then hands the durable
  // events to the listener in order. The head first: a progress message read
  // from it must never name a revision behind an event already delivered
  // (replay may see an event before its live copy arrives; watch streams drop
  // the duplicate).
  void Publish(const std::vector<Published>& ready, uint64_t target)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sync_mu_) {
    if (!ready.empty()) {
      MutexLock lock(&view_mu_);
      head_view_ = ready.back().view;
    }
    if (target > head_revision()) head_.store(target, std::memory_order_release);
    for (const Published& p : ready) {
      CallCommitListener(listener_, p.event, p.audit, p.written);
    }
  }

  void PublishUpTo(uint64_t target) ABSL_EXCLUSIVE_LOCKS_REQUIRED(sync_mu_) {
    std::vector<Published> ready;
    {
      MutexLock append(&mu_);
      ready = TakePendingUpTo(target);
    }
    Publish(ready, target);
  }

  // Calls `visit` with each row of `key_id`'s usage, as last written: every
  // writer's (key id + "/" + writer) and the row from before writers (the
  // key id alone).
  template <typename Visit>
  absl::Status ForEachUsageRow(std::string_view key_id, Visit visit) const {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cfs_[kCfUsage]));
    const std::string writers = StrCat(key_id, "/");
    for (it->Seek(key_id); it->Valid(); it->Next()) {
      if (it->key() != key_id && !it->key().starts_with(writers)) break;
      visit(it->key(), it->value());
    }
    return FromRocks(it->status(), "scan");
  }

  absl::StatusOr<Page> ScanCf(rocksdb::ReadOptions ro, rocksdb::ColumnFamilyHandle* cf,
                              std::string_view prefix, std::string_view after, size_t limit) const {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf));
    Page page;
    if (after.empty()) {
      it->Seek(prefix);
    } else {
      it->Seek(after);
      if (it->Valid() && it->key() == after) it->Next();
    }
    for (; it->Valid() && it->key().starts_with(prefix); it->Next()) {
      if (page.rows.size() == limit) {
        page.more = true;
        break;
      }
      page.rows.push_back({it->key().ToString(), it->value().ToString()});
    }
    if (!it->status().ok()) return FromRocks(it->status(), "scan");
    return page;
  }

  // Constant after construction.
  const std::unique_ptr<rocksdb::DB> db_;
  const std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  const std::string store_id_;
  const uint64_t retention_;
  const bool group_commit_;  // appends unsynced; Sync fsyncs the WAL for many
  const bool sync_each_;     // every append is its own synced write

  // Lock order: sync_mu_, then mu_ or view_mu_ (annotated, checked by
  // clang's -Wthread-safety-beta).
  Mutex sync_mu_;  // one syncer at a time; publication in revision order
  CondVar sync_done_;
  bool syncing_ ABSL_GUARDED_BY(sync_mu_) = false;
  CommitListener listener_ ABSL_GUARDED_BY(sync_mu_);
  std::atomic<uint64_t> head_;  // durable and published; written under sync_mu_
  mutable Mutex view_mu_ ABSL_ACQUIRED_AFTER(sync_mu_, mu_);
  std::shared_ptr<const RocksView> head_view_ ABSL_GUARDED_BY(view_mu_);  // at head_

  Mutex mu_ ABSL_ACQUIRED_AFTER(sync_mu_);              // serializes appends
  std::atomic<uint64_t> appended_;                      // written under mu_
  std::deque<Published> pending_ ABSL_GUARDED_BY(mu_);  // appended, not yet published
  absl::Status broken_ ABSL_GUARDED_BY(mu_);

  LoneReplica replicas_;  // one process owns the database

  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> conflicts_{0};
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint64_t> advisory_writes_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<KeyStore>> OpenRocksDbStore(const RocksDbStoreOptions& options) {
  if (absl::Status s = CheckEventRetention(options.event_retention); !s.ok()) return s;
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.info_log_level = rocksdb::WARN_LEVEL;
  db_options.info_log = std::make_shared<SpdlogRocksLogger>(db_options.info_log_level);
  // Column families with few writes keep old WAL files alive; past this
  // total RocksDB flushes them. It also caps the WAL's preallocation (1.1x the
  // 64 MiB write buffer otherwise), so a full disk shows within 8 MiB of
  // writes rather than 70.
  db_options.max_total_wal_size = 8 << 20;
  // Each time the WAL passes that size, every column family holding data in
  // its oldest file switches to a new memtable, the rarely written ones
  // included. With RocksDB's default of two memtables per family, a second
  // switch before the first flush finished stopped every write ("Stopping
  // writes because we have 2 immutable memtables") under sustained mutations.
  // Memory stays bounded by the WAL cap: only unflushed writes fill memtables.
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.max_write_buffer_number = 4;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (std::string_view name : kCfNames) descriptors.emplace_back(std::string(name), cf_options);
  // RocksDB opens a database only with all of its column families named.
  std::vector<std::string> existing;
  // Made first: RocksDB logs an error for a directory that does not exist.
  std::error_code made;
  std::filesystem::create_directories(options.path, made);
  if (std::filesystem::exists(std::filesystem::path(options.path) / "CURRENT") &&
      rocksdb::DB::ListColumnFamilies(db_options, options.path, &existing).ok()) {
    for (std::string_view retired : kRetiredCfNames) {
      if (std::find(existing.begin(), existing.end(), retired) != existing.end()) {
        descriptors.emplace_back(std::string(retired), cf_options);
      }
    }
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  absl::Status opened =
      FromRocks(rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &raw),
                "open " + options.path);
  if (!opened.ok()) return opened;
  std::unique_ptr<rocksdb::DB> db(raw);
  while (handles.size() > kCfCount) {
    rocksdb::Status dropped = db->DropColumnFamily(handles.back());
    if (dropped.ok()) dropped = db->DestroyColumnFamilyHandle(handles.back());
    handles.pop_back();
    if (!dropped.ok()) {
      for (auto* cf : handles) db->DestroyColumnFamilyHandle(cf).PermitUncheckedError();
      return FromRocks(dropped, "drop a retired table");
    }
  }

  auto cleanup = [&](absl::Status status) {
    for (auto* cf : handles) db->DestroyColumnFamilyHandle(cf);
    return status;
  };
  std::string store_id;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), handles[kMeta], kStoreIdKey, &store_id);
  if (s.IsNotFound()) {
    store_id = GenerateId("st_", 16);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db->Put(wo, handles[kMeta], kStoreIdKey, store_id);
  }
  if (!s.ok()) return cleanup(FromRocks(s, "store id"));
  std::string rev;
  s = db->Get(rocksdb::ReadOptions(), handles[kMeta], kRevisionKey, &rev);
  if (!s.ok() && !s.IsNotFound()) return cleanup(FromRocks(s, "revision"));
  const uint64_t head = s.ok() ? DecodeRevision(rev) : 0;

  // Trim events a smaller --event-retention no longer keeps.
  if (const uint64_t oldest = OldestRetained(head, options.event_retention); oldest > 1) {
    s = db->DeleteRange(rocksdb::WriteOptions(), handles[kCfEvents], EncodeRevision(0),
                        EncodeRevision(oldest));
    if (!s.ok()) return cleanup(FromRocks(s, "trim events"));
  }
  if (absl::Status filled = FillAuditLog(*db, handles, head); !filled.ok()) return cleanup(filled);
  return std::unique_ptr<KeyStore>(
      new RocksDbStore(std::move(db), std::move(handles), std::move(store_id), head, options));
}

}  // namespace latchkey
