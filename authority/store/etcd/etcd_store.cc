// The etcd KeyStore (docs/design.md, "The etcd store"): opening one, reads
// at a revision, and advisory rows. internal/etcd_store_impl.h says which
// file of this folder does what.
#include "authority/store/etcd/etcd_store.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "authority/store/etcd/internal/etcd_store_impl.h"
#include "common/key_format.h"
#include "common/log.h"
#include "common/strings.h"

namespace latchkey {

using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;

EtcdStore::EtcdStore(std::unique_ptr<EtcdClient> client, const EtcdStoreOptions& options,
                     std::string store_id, uint64_t head, int64_t head_etcd_revision,
                     std::map<std::string, std::string> rows)
    : client_(std::move(client)),
      layout_(options.prefix),
      retention_(options.event_retention),
      store_id_(std::move(store_id)),
      leases_(*client_, layout_),
      head_(head),
      head_etcd_revision_(head_etcd_revision),
      known_committed_(head),
      copy_(std::move(rows)) {
  watcher_ = std::thread([this] { WatchLog(); });
}

EtcdStore::~EtcdStore() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    if (watch_ctx_ != nullptr) watch_ctx_->TryCancel();
  }
  watcher_.join();
}

absl::StatusOr<std::optional<std::string>> EtcdStore::Get(Table table, std::string_view key,
                                                          const StoreSnapshot* at) const {
  return GetAt(layout_.Row(table, key), EtcdRevisionOf(at));
}

absl::StatusOr<Page> EtcdStore::Scan(Table table, std::string_view prefix, std::string_view after,
                                     size_t limit, const StoreSnapshot* at) const {
  return ScanAt(layout_.Row(table, ""), ScanStart(table, prefix, after),
                PrefixEnd(layout_.Row(table, prefix)), limit, EtcdRevisionOf(at));
}

absl::StatusOr<std::vector<v1::KeyEvent>> EtcdStore::EventsAfter(uint64_t after,
                                                                 size_t limit) const {
  uint64_t head;
  int64_t at;
  {
    MutexLock lock(&published_mu_);
    head = head_revision();
    at = head_etcd_revision_;
  }
  if (after > head) {
    return absl::FailedPreconditionError(
        StrCat("revision ", after, " is ahead of this store's head ", head));
  }
  const uint64_t latest = std::max(head, known_committed_.load(std::memory_order_acquire));
  const uint64_t oldest_retained = OldestRetained(latest, retention_);
  if (after + 1 < oldest_retained) {
    return absl::OutOfRangeError(StrCat("events after ", after, " were trimmed"));
  }
  std::vector<v1::KeyEvent> events;
  if (limit == 0 || after == head) return events;
  RangeRequest req;
  req.set_key(layout_.Log(after + 1));
  req.set_range_end(layout_.Log(head + 1));
  req.set_limit(static_cast<int64_t>(limit));
  req.set_revision(at);
  RangeResponse resp;
  if (absl::Status s = client_->Range(req, &resp); !s.ok()) return s;
  for (const auto& kv : resp.kvs()) {
    internal::LogRecord rec;
    if (!rec.ParseFromString(kv.value())) return absl::DataLossError("log record");
    if (rec.event().revision() != after + 1 + events.size()) {
      return absl::OutOfRangeError(StrCat("events after ", after, " were trimmed"));
    }
    events.push_back(std::move(*rec.mutable_event()));
  }
  if (events.empty()) {
    return absl::OutOfRangeError(StrCat("events after ", after, " were trimmed"));
  }
  return events;
}

absl::StatusOr<std::vector<v1::AuditEvent>> EtcdStore::AuditEvents(std::string_view project_id,
                                                                   uint64_t after,
                                                                   size_t limit) const {
  return ReadAudit(layout_.Audit(project_id), after, limit);
}

absl::StatusOr<std::vector<v1::AuditEvent>> EtcdStore::AuditLog(uint64_t after,
                                                                size_t limit) const {
  return ReadAudit(layout_.AuditLog(), after, limit);
}

std::unique_ptr<StoreSnapshot> EtcdStore::Snapshot() {
  MutexLock lock(&published_mu_);
  return std::make_unique<EtcdSnapshot>(head_revision(), head_etcd_revision_);
}

void EtcdStore::SetCommitListener(CommitListener listener) {
  MutexLock lock(&mu_);
  listener_ = std::move(listener);
}

StoreStats EtcdStore::stats() const {
  return StoreStats{commits_.load(std::memory_order_relaxed),
                    conflicts_.load(std::memory_order_relaxed),
                    txns_.load(std::memory_order_relaxed),  // a batch is one etcd write
                    advisory_writes_.load(std::memory_order_relaxed),
                    client_->calls(),
                    client_->call_seconds()};
}

absl::Status EtcdStore::Reachable() const {
  {
    MutexLock lock(&published_mu_);
    if (!cannot_publish_.ok()) return cannot_publish_;
  }
  // A linearizable read goes through the leader: it answers only with a
  // quorum behind it.
  RangeRequest req;
  req.set_key(layout_.Head());
  req.set_count_only(true);
  RangeResponse resp;
  return client_->Range(req, &resp);
}

// Usage rows: each transaction holds only while the writer is still this
// replica's (one comparison, never a row's value), within etcd's limits: 128
// operations, and well under its 1.5 MiB request.
absl::Status EtcdStore::PutUsage(const std::string& writer, std::vector<UsageRow> rows) {
  absl::StatusOr<int64_t> lease = leases_.UsageWriterLease(writer);
  if (!lease.ok()) return lease.status();
  constexpr size_t kMaxTxnBytes = 1 << 20;
  size_t next = 0;
  while (next < rows.size()) {
    TxnRequest txn;
    RequireLease(txn, layout_.UsageWriter(writer), *lease);
    size_t bytes = 0;
    for (; next < rows.size() && static_cast<size_t>(txn.success_size()) < kMaxTxnOps; ++next) {
      const UsageRow& row = rows[next];
      std::string key = layout_.Usage(UsageRowKey(row.key_id, writer));
      if (txn.success_size() > 0 && bytes + key.size() + row.value.size() > kMaxTxnBytes) break;
      bytes += key.size() + row.value.size();
      AddPut(txn, std::move(key), row.value);
    }
    TxnResponse resp;
    // Sent again when a member went away mid-call: putting the same rows
    // twice is harmless.
    if (absl::Status s = client_->BlindTxn(txn, &resp); !s.ok()) return s;
    if (!resp.succeeded()) {
      leases_.LostUsageWriter(*lease);
      return absl::AbortedError(
          StrCat("usage writer ", writer, " was taken over: this replica's loan lapsed"));
    }
    advisory_writes_.fetch_add(1, std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

// From the copy the watch keeps (usage rows are under P t/): no etcd call.
absl::StatusOr<std::vector<UsageRow>> EtcdStore::GetUsage(std::string_view key_id) const {
  const std::string row = layout_.Usage(key_id);
  const std::string writers = StrCat(row, "/");
  const size_t base = layout_.Usage("").size();
  std::vector<UsageRow> rows;
  MutexLock lock(&batch_mu_);
  for (auto it = copy_.lower_bound(row); it != copy_.end(); ++it) {
    if (it->first != row && !absl::StartsWith(it->first, writers)) break;
    rows.push_back(UsageRow{std::string(key_id),
                            UsageWriterOf(std::string_view(it->first).substr(base), key_id),
                            it->second});
  }
  return rows;
}

absl::StatusOr<Page> EtcdStore::ScanUsage(std::string_view after, size_t limit) const {
  const std::string base = layout_.Usage("");
  const std::string start =
      after.empty() ? base : layout_.Usage(StrCat(after, std::string(1, '\0')));
  Page page;
  MutexLock lock(&batch_mu_);
  for (auto it = copy_.lower_bound(start); it != copy_.end(); ++it) {
    if (!absl::StartsWith(it->first, base)) break;
    if (page.rows.size() == limit) {
      page.more = true;
      break;
    }
    page.rows.push_back({it->first.substr(base.size()), it->second});
  }
  return page;
}

absl::Status EtcdStore::EraseUsage(std::string_view key_id) {
  const std::string row = layout_.Usage(key_id);
  TxnRequest txn;
  txn.add_success()->mutable_request_delete_range()->set_key(row);
  auto* writers = txn.add_success()->mutable_request_delete_range();
  writers->set_key(StrCat(row, "/"));
  writers->set_range_end(PrefixEnd(StrCat(row, "/")));
  TxnResponse resp;
  return client_->BlindTxn(txn, &resp);
}

absl::Status EtcdStore::PutProgress(std::string_view key, std::optional<std::string> value,
                                    std::string_view duty) {
  TxnRequest txn;
  if (!duty.empty()) {
    // Only while the duty's key is still bound to this replica's lease.
    absl::StatusOr<int64_t> lease = leases_.DutyLease(duty);
    if (!lease.ok()) return lease.status();
    RequireLease(txn, layout_.Duty(duty), *lease);
  }
  const std::string row = layout_.Progress(key);
  if (value) {
    AddPut(txn, row, *std::move(value));
  } else {
    txn.add_success()->mutable_request_delete_range()->set_key(row);
  }
  TxnResponse resp;
  if (absl::Status s = client_->BlindTxn(txn, &resp); !s.ok()) return s;
  if (!resp.succeeded()) {
    return absl::AbortedError(StrCat("another replica holds ", duty, " now"));
  }
  advisory_writes_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<Page> EtcdStore::ScanProgress(std::string_view after, size_t limit) const {
  const std::string base = layout_.Progress("");
  return ScanAt(base, after.empty() ? base : layout_.Progress(StrCat(after, std::string(1, '\0'))),
                PrefixEnd(base), limit, 0);
}

absl::StatusOr<std::optional<std::string>> EtcdStore::GetProgress(std::string_view key) const {
  return GetAt(layout_.Progress(key), 0);
}

int64_t EtcdStore::EtcdRevisionOf(const StoreSnapshot* at) const {
  if (at != nullptr) return static_cast<const EtcdSnapshot*>(at)->etcd_revision();
  MutexLock lock(&published_mu_);
  return head_etcd_revision_;
}

absl::StatusOr<std::optional<std::string>> EtcdStore::GetAt(const std::string& key,
                                                            int64_t etcd_revision,
                                                            absl::Time deadline) const {
  RangeRequest req;
  req.set_key(key);
  req.set_revision(etcd_revision);
  RangeResponse resp;
  if (absl::Status s = client_->Range(req, &resp, deadline); !s.ok()) return s;
  if (resp.kvs_size() == 0) return std::nullopt;
  return resp.kvs(0).value();
}

std::string EtcdStore::ScanStart(Table table, std::string_view prefix,
                                 std::string_view after) const {
  return after.empty() ? layout_.Row(table, prefix)
                       : layout_.Row(table, StrCat(after, std::string(1, '\0')));
}

absl::StatusOr<Page> EtcdStore::ScanAt(const std::string& folder, const std::string& start,
                                       const std::string& end, size_t limit,
                                       int64_t etcd_revision) const {
  RangeRequest req;
  req.set_key(start);
  req.set_range_end(end);
  req.set_limit(static_cast<int64_t>(limit) + 1);
  req.set_revision(etcd_revision);
  RangeResponse resp;
  if (absl::Status s = client_->Range(req, &resp); !s.ok()) return s;
  Page page;
  for (const auto& kv : resp.kvs()) {
    if (page.rows.size() == limit) {
      page.more = true;
      break;
    }
    page.rows.push_back({kv.key().substr(folder.size()), kv.value()});
  }
  return page;
}

absl::StatusOr<std::vector<v1::AuditEvent>> EtcdStore::ReadAudit(const std::string& folder,
                                                                 uint64_t after,
                                                                 size_t limit) const {
  RangeRequest req;
  req.set_key(StrCat(folder, Decimal(after + 1)));
  req.set_range_end(PrefixEnd(folder));
  req.set_limit(static_cast<int64_t>(limit));
  req.set_revision(EtcdRevisionOf(nullptr));
  RangeResponse resp;
  if (absl::Status s = client_->Range(req, &resp); !s.ok()) return s;
  std::vector<v1::AuditEvent> records;
  for (const auto& kv : resp.kvs()) {
    if (!records.emplace_back().ParseFromString(kv.value())) {
      return absl::DataLossError("audit record");
    }
  }
  return records;
}

absl::StatusOr<std::unique_ptr<KeyStore>> OpenEtcdStore(const EtcdStoreOptions& options) {
  absl::StatusOr<std::unique_ptr<EtcdClient>> connected = ConnectEtcd(options);
  if (!connected.ok()) return connected.status();
  std::unique_ptr<EtcdClient> client = *std::move(connected);
  const EtcdLayout layout(options.prefix);

  // A prefix with keys but no store id holds an import cut short (or still
  // running): creating a store over it would mix two states.
  RangeRequest id;
  id.set_key(layout.Id());
  RangeResponse id_resp;
  if (absl::Status s = client->Range(id, &id_resp); !s.ok()) return s;
  if (id_resp.kvs_size() == 0) {
    absl::StatusOr<int64_t> present = CountKeys(*client, options.prefix);
    if (!present.ok()) return present.status();
    if (*present > 0) {
      return absl::FailedPreconditionError(
          StrCat("etcd prefix ", options.prefix, " holds ", *present,
                 " keys but no store id: an import into it is running or was cut short; "
                 "delete the prefix and import again"));
    }
  }

  // Create the store unless it exists; the first replica to commit wins.
  TxnRequest create;
  RequireAbsent(create, layout.Id());
  AddPut(create, layout.Id(), GenerateId("st_", 16));
  AddPut(create, layout.Head(), HeadValue(0));
  TxnResponse created;
  if (absl::Status s = client->BlindTxn(create, &created); !s.ok()) return s;

  // The id and the head, and the etcd revision at which that head holds. A
  // head of the layout before v2 is moved to v2 first (HeadValue), which
  // fences off the replicas of the release before.
  RangeResponse resp;
  std::string store_id;
  std::optional<uint64_t> head;
  for (int attempt = 1;; ++attempt) {
    RangeRequest req;
    req.set_key(layout.Meta());
    req.set_range_end(PrefixEnd(layout.Meta()));
    if (absl::Status s = client->Range(req, &resp); !s.ok()) return s;
    std::string before_v2;
    for (const auto& kv : resp.kvs()) {
      if (kv.key() == layout.Id()) store_id = kv.value();
      if (kv.key() == layout.Head()) {
        head = ParseHead(kv.value());
        if (!head && ParseHeadBeforeV2(kv.value())) before_v2 = kv.value();
      }
    }
    if (head || before_v2.empty()) break;
    if (attempt == 20) {
      return absl::AbortedError(
          "could not move the etcd store's head to layout v2: it kept moving");
    }
    TxnRequest upgrade;
    RequireValue(upgrade, layout.Head(), before_v2);
    AddPut(upgrade, layout.Head(), HeadValue(*ParseHeadBeforeV2(before_v2)));
    TxnResponse upgraded;
    if (absl::Status s = client->BlindTxn(upgrade, &upgraded); !s.ok()) return s;
    if (upgraded.succeeded()) {
      spdlog::info(
          "etcd prefix {}: moved to layout v2 at revision {}; replicas of an earlier "
          "release can no longer commit to it",
          options.prefix, before_v2);
    }
  }
  if (store_id.empty() || !head) {
    return absl::DataLossError(StrCat("etcd prefix ", options.prefix,
                                      " holds no readable store id and head revision (a store "
                                      "of a later release?)"));
  }
  // The rows at that same etcd revision: the copy the watch keeps from there.
  const int64_t at = resp.header().revision();
  absl::StatusOr<std::map<std::string, std::string>> rows = ReadAll(*client, layout.Rows(), at);
  if (!rows.ok()) return rows.status();
  return std::unique_ptr<KeyStore>(
      new EtcdStore(std::move(client), options, std::move(store_id), *head, at, *std::move(rows)));
}

}  // namespace latchkey
