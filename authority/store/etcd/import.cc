// ImportIntoEtcd (etcd_store.h): another store's state copied into an empty
// etcd prefix (docs/operations.md, "Moving to etcd").
#include <map>

#include "authority/internal/records.pb.h"
#include "authority/store/etcd/etcd_store.h"
#include "authority/store/etcd/internal/etcd_client.h"
#include "authority/store/etcd/internal/layout.h"
#include "common/strings.h"

namespace latchkey {
namespace {

using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;

// Puts, sent in transactions within etcd's default limits (128 operations,
// 1.5 MiB per request).
class BulkWriter {
 public:
  explicit BulkWriter(EtcdClient& client) : client_(client) {}

  absl::Status Put(std::string key, std::string value) {
    bytes_ += key.size() + value.size();
    auto* put = txn_.add_success()->mutable_request_put();
    put->set_key(std::move(key));
    put->set_value(std::move(value));
    if (txn_.success_size() >= 100 || bytes_ >= (1 << 20)) return Flush();
    return absl::OkStatus();
  }

  absl::Status Flush() {
    if (txn_.success_size() == 0) return absl::OkStatus();
    TxnResponse resp;
    absl::Status s = client_.BlindTxn(txn_, &resp);
    txn_.Clear();
    bytes_ = 0;
    return s;
  }

 private:
  EtcdClient& client_;
  TxnRequest txn_;
  size_t bytes_ = 0;
};

}  // namespace

absl::StatusOr<ImportReport> ImportIntoEtcd(const KeyStore& source,
                                            const EtcdStoreOptions& options) {
  absl::StatusOr<std::unique_ptr<EtcdClient>> client = ConnectEtcd(options);
  if (!client.ok()) return client.status();
  const std::string& prefix = options.prefix;
  const EtcdLayout layout(prefix);
  absl::StatusOr<int64_t> present = CountKeys(**client, prefix);
  if (!present.ok()) return present.status();
  if (*present > 0) {
    return absl::FailedPreconditionError(
        StrCat("etcd prefix ", prefix, " is not empty (", *present,
               " keys): an import goes only into an empty prefix"));
  }
  ImportReport report;
  report.store_id = source.store_id();
  report.head = source.head_revision();
  const uint64_t oldest_event = OldestRetained(report.head, options.event_retention);
  // Refused before anything is written: the events to keep must be there.
  if (absl::StatusOr<std::vector<v1::KeyEvent>> first = source.EventsAfter(oldest_event - 1, 1);
      !first.ok()) {
    if (!absl::IsOutOfRange(first.status())) return first.status();
    return absl::OutOfRangeError(
        StrCat("the source store keeps fewer events than --event-retention ",
               options.event_retention, ": give the value it was run with"));
  }
  BulkWriter out(**client);

  // Every row of a paged scan (`scan(after)`), put under the etcd key
  // `key_of(row key)`.
  const auto copy = [&](const auto& scan, const auto& key_of) -> absl::Status {
    for (std::string after;;) {
      absl::StatusOr<Page> page = scan(after);
      if (!page.ok()) return page.status();
      for (Row& row : page->rows) {
        after = row.key;
        ++report.rows;
        if (absl::Status s = out.Put(key_of(row.key), std::move(row.value)); !s.ok()) return s;
      }
      if (!page->more) return absl::OkStatus();
    }
  };
  for (Table table : kAllTables) {
    absl::Status copied =
        copy([&](const std::string& after) { return source.Scan(table, "", after, 1000); },
             [&](const std::string& key) { return layout.Row(table, key); });
    if (!copied.ok()) return copied;
  }
  if (absl::Status s = copy([&](const std::string& after) { return source.ScanUsage(after, 1000); },
                            [&](const std::string& key) { return layout.Usage(key); });
      !s.ok()) {
    return s;
  }
  // Progress rows: webhooks carry on where they were.
  if (absl::Status s =
          copy([&](const std::string& after) { return source.ScanProgress(after, 1000); },
               [&](const std::string& key) { return layout.Progress(key); });
      !s.ok()) {
    return s;
  }

  // Audit records, in revision order, each by revision and by its project.
  // Each retained revision's record also goes into its log record.
  std::map<uint64_t, v1::AuditEvent> recent;
  for (uint64_t after = 0;;) {
    absl::StatusOr<std::vector<v1::AuditEvent>> audit = source.AuditLog(after, 1000);
    if (!audit.ok()) return audit.status();
    for (v1::AuditEvent& a : *audit) {
      after = a.revision();
      ++report.audit;
      std::string record = a.SerializeAsString();
      if (absl::Status s = out.Put(layout.Audit(a.project_id(), a.revision()), record); !s.ok()) {
        return s;
      }
      if (absl::Status s = out.Put(layout.AuditLog(a.revision()), std::move(record)); !s.ok()) {
        return s;
      }
      if (a.revision() >= oldest_event) recent.emplace(a.revision(), std::move(a));
    }
    if (audit->empty()) break;
  }
  if (report.audit != report.head) {
    return absl::DataLossError(StrCat("found ", report.audit, " audit records for ", report.head,
                                      " revisions in the source store"));
  }

  for (uint64_t after = oldest_event - 1; after < report.head;) {
    absl::StatusOr<std::vector<v1::KeyEvent>> events = source.EventsAfter(after, 1000);
    if (!events.ok()) return events.status();
    if (events->empty()) return absl::DataLossError("the source store's events end early");
    for (v1::KeyEvent& e : *events) {
      after = e.revision();
      internal::LogRecord rec;
      *rec.mutable_audit() = recent[e.revision()];
      *rec.mutable_event() = std::move(e);
      ++report.events;
      if (absl::Status s = out.Put(layout.Log(after), rec.SerializeAsString()); !s.ok()) {
        return s;
      }
    }
  }
  if (absl::Status s = out.Flush(); !s.ok()) return s;

  // Last, in one transaction: the store exists only once all of it is there.
  TxnRequest finish;
  RequireAbsent(finish, layout.Id());
  AddPut(finish, layout.Id(), report.store_id);
  AddPut(finish, layout.Head(), HeadValue(report.head));
  TxnResponse resp;
  if (absl::Status s = (*client)->BlindTxn(finish, &resp); !s.ok()) return s;
  // Sent twice when a member went away mid-call: the id tells whose it is.
  RangeRequest id;
  id.set_key(layout.Id());
  RangeResponse id_resp;
  if (absl::Status s = (*client)->Range(id, &id_resp); !s.ok()) return s;
  if (id_resp.kvs_size() != 1 || id_resp.kvs(0).value() != report.store_id) {
    return absl::AbortedError(StrCat("a store was created under ", prefix,
                                     " while importing; delete the prefix and import again"));
  }
  return report;
}

}  // namespace latchkey
