// A KeyStore wrapper for tests that assert where store work runs.
#ifndef LATCHKEY_TESTS_TESTING_THREAD_CHECKING_STORE_H_
#define LATCHKEY_TESTS_TESTING_THREAD_CHECKING_STORE_H_

#include <atomic>
#include <functional>
#include <memory>

#include "absl/time/clock.h"
#include "authority/store/key_store.h"
#include "common/mutex.h"
#include "common/work_queue.h"

namespace latchkey::testing {

// Forwards to a real store and counts calls made off the work queue's
// threads once armed (startup runs on the test's own thread).
class ThreadCheckingStore final : public KeyStore {
 public:
  explicit ThreadCheckingStore(std::unique_ptr<KeyStore> inner) : inner_(std::move(inner)) {}

  void Arm() { armed_ = true; }
  int off_worker_calls() const { return off_worker_.load(); }
  int calls() const { return calls_.load(); }

  const std::string& store_id() const override { return inner_->store_id(); }
  uint64_t head_revision() const override { return inner_->head_revision(); }
  uint64_t next_revision() const override { return inner_->next_revision(); }
  void AwaitKnownRevisions() const override { inner_->AwaitKnownRevisions(); }
  absl::StatusOr<uint64_t> Append(Mutation m) override {
    Note();
    Gather();
    MutexLock io(&io_mu_);
    return inner_->Append(std::move(m));
  }
  absl::Status Sync(uint64_t revision) override {
    Note();
    return inner_->Sync(revision);
  }
  absl::StatusOr<std::string> UsageWriter() override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->UsageWriter();
  }
  absl::Status PutUsage(const std::string& writer, std::vector<UsageRow> rows) override {
    Note();
    absl::SleepFor(absl::Milliseconds(usage_delay_ms_.load()));
    absl::Status put;
    {
      MutexLock io(&io_mu_);
      put = inner_->PutUsage(writer, std::move(rows));
    }
    std::function<void()> landed;
    bool fail = false;
    {
      MutexLock lock(&landed_mu_);
      landed.swap(usage_landed_);
      std::swap(fail, fail_after_landing_);
    }
    if (landed) landed();
    if (put.ok() && fail) return absl::UnavailableError("usage put: answer lost (test)");
    return put;
  }
  absl::StatusOr<std::vector<UsageRow>> GetUsage(std::string_view key_id) const override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->GetUsage(key_id);
  }
  absl::Status EraseUsage(std::string_view key_id) override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->EraseUsage(key_id);
  }
  absl::StatusOr<Page> ScanUsage(std::string_view after, size_t limit) const override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->ScanUsage(after, limit);
  }
  // Each usage put waits this long first: widens a race for a test.
  void DelayUsageWrites(int ms) { usage_delay_ms_ = ms; }
  // `landed` runs once, on the writing thread, after the next usage put is
  // in the store and before the put returns to its caller.
  void OnNextUsagePut(std::function<void()> landed) {
    MutexLock lock(&landed_mu_);
    usage_landed_ = std::move(landed);
  }
  // The next usage put lands, then answers UNAVAILABLE, as a call whose
  // answer was lost does.
  void FailNextUsagePutAfterLanding() {
    MutexLock lock(&landed_mu_);
    fail_after_landing_ = true;
  }
  // The next `n` Appends wait for one another (at most 10 s) before any goes
  // on: mutations racing from `n` authorities all finish their reads before
  // one commits, however their threads are scheduled.
  void GatherAppends(int n) {
    MutexLock lock(&gather_mu_);
    gather_awaited_ = n;
  }
  StoreStats stats() const override { return inner_->stats(); }
  absl::Status Reachable() const override { return inner_->Reachable(); }
  Replicas& replicas() override { return inner_->replicas(); }
  absl::StatusOr<std::optional<std::string>> Get(Table table, std::string_view key,
                                                 const StoreSnapshot* at) const override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->Get(table, key, at);
  }
  absl::StatusOr<Page> Scan(Table table, std::string_view prefix, std::string_view after,
                            size_t limit, const StoreSnapshot* at) const override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->Scan(table, prefix, after, limit, at);
  }
  // `row` runs under io_mu_, so it must not call this store (no caller does).
  absl::Status ForEach(
      Table table, std::string_view after, const StoreSnapshot* at,
      absl::FunctionRef<bool(std::string_view key, std::string_view value)> row) const override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->ForEach(table, after, at, row);
  }
  absl::StatusOr<std::optional<std::string>> GetLatest(Table table,
                                                       std::string_view key) const override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->GetLatest(table, key);
  }
  absl::StatusOr<Page> ScanLatest(Table table, std::string_view prefix, std::string_view after,
                                  size_t limit) const override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->ScanLatest(table, prefix, after, limit);
  }
  absl::StatusOr<std::vector<v1::KeyEvent>> EventsAfter(uint64_t after,
                                                        size_t limit) const override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->EventsAfter(after, limit);
  }
  absl::StatusOr<std::vector<v1::AuditEvent>> AuditEvents(std::string_view project_id,
                                                          uint64_t after,
                                                          size_t limit) const override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->AuditEvents(project_id, after, limit);
  }
  absl::StatusOr<std::vector<v1::AuditEvent>> AuditLog(uint64_t after,
                                                       size_t limit) const override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->AuditLog(after, limit);
  }
  absl::Status PutProgress(std::string_view key, std::optional<std::string> value,
                           std::string_view duty) override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->PutProgress(key, std::move(value), duty);
  }
  absl::StatusOr<Page> ScanProgress(std::string_view after, size_t limit) const override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->ScanProgress(after, limit);
  }
  absl::StatusOr<std::optional<std::string>> GetProgress(std::string_view key) const override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->GetProgress(key);
  }
  std::unique_ptr<StoreSnapshot> Snapshot() override {
    Note();
    MutexLock io(&io_mu_);
    return inner_->Snapshot();
  }
  void SetCommitListener(CommitListener listener) override {
    inner_->SetCommitListener(std::move(listener));
  }

 private:
  void Note() const {
    if (!armed_) return;
    calls_.fetch_add(1);
    if (!WorkQueue::OnWorkerThread()) off_worker_.fetch_add(1);
  }

  void Gather() {
    MutexLock lock(&gather_mu_);
    if (gather_awaited_ == 0) return;
    --gather_awaited_;
    gathered_.SignalAll();
    gathered_.WaitFor(
        &gather_mu_, absl::Seconds(10),
        [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(gather_mu_) { return gather_awaited_ == 0; });
  }

  const std::unique_ptr<KeyStore> inner_;
  // Held around every call that reads or writes RocksDB's memtable (not Sync,
  // which only waits for the disk and publishes). Debian's RocksDB is not
  // built with ThreadSanitizer, so TSan cannot see the atomics with which its
  // memtable publishes a write to readers and reports each concurrent read
  // as a race inside RocksDB; this lock gives TSan that ordering, so the
  // [concurrency] tests report only races in our own code.
  mutable Mutex io_mu_;
  std::atomic<bool> armed_{false};
  std::atomic<int> usage_delay_ms_{0};
  Mutex landed_mu_;
  std::function<void()> usage_landed_ ABSL_GUARDED_BY(landed_mu_);
  bool fail_after_landing_ ABSL_GUARDED_BY(landed_mu_) = false;
  Mutex gather_mu_;
  CondVar gathered_;
  int gather_awaited_ ABSL_GUARDED_BY(gather_mu_) = 0;  // Appends GatherAppends still awaits
  mutable std::atomic<int> calls_{0};
  mutable std::atomic<int> off_worker_{0};
};

}  // namespace latchkey::testing

#endif  // LATCHKEY_TESTS_TESTING_THREAD_CHECKING_STORE_H_
