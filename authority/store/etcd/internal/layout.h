// Where the etcd store keeps what, under its prefix P (docs/design.md, "The
// etcd store"):
//
//   P meta/id                     the store id
//   P meta/head                   the last committed revision and the layout's
//                                 version (HeadValue)
//   P t/<table>/<row key>         rows (TableName)
//   P t/usage/<key id>[/<writer>] usage rows (KeyStore::PutUsage), beside the
//                                 tables so that the watch keeps them too
//   P log/<revision>              internal.LogRecord: event, audit record, nonce
//   P audit/<project>/<revision>  the audit record, by project
//   P auditlog/<revision>         the audit record, by revision (KeyStore::AuditLog)
//   P advisory/progress/<key>     a progress row (KeyStore::PutProgress)
//   P duties/<duty>               the replica doing a duty (Replicas::Lead), leased
//   P replicas/<replica id>       internal.SharedReceipts of a live replica, leased
//   P usage-writers/<n>           the replica holding usage writer n, leased
//
// Revisions are 20-digit decimals, so etcd's byte order is revision order.
// The store, its watch and the import all name keys through EtcdLayout.
#ifndef LATCHKEY_AUTHORITY_STORE_ETCD_INTERNAL_LAYOUT_H_
#define LATCHKEY_AUTHORITY_STORE_ETCD_INTERNAL_LAYOUT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "authority/store/key_store.h"

namespace latchkey {

// `r` as 20 decimal digits.
std::string Decimal(uint64_t r);

// The first key after every key that starts with `prefix` (etcd's range_end).
std::string PrefixEnd(std::string prefix);

// meta/head's value: the revision, in decimal, then " v2", this layout's
// version. The layout before it (no sidecar keys table, whose rows every key
// change writes since) held the revision alone. A release of that layout
// cannot open a store at v2, and its commits, which compare the head with a
// bare revision, all fail: it can never change a key without that key's
// sidecar keys row (docs/operations.md,
// "Upgrading: authorities first").
std::string HeadValue(uint64_t revision);
// The revision in a head value of this layout; nullopt for any other.
std::optional<uint64_t> ParseHead(std::string_view value);
// The revision in a head value of the layout before (a bare decimal).
std::optional<uint64_t> ParseHeadBeforeV2(std::string_view value);

class EtcdLayout {
 public:
  explicit EtcdLayout(std::string prefix) : prefix_(std::move(prefix)) {}

  const std::string& prefix() const { return prefix_; }

  std::string Id() const;
  std::string Head() const;
  std::string Meta() const;  // the folder of both

  std::string Rows() const;  // the folder of every table and the usage rows
  std::string Row(Table table, std::string_view key) const;
  // `row_key` as UsageRowKey makes it.
  std::string Usage(std::string_view row_key) const;

  std::string Log() const;  // the folder
  std::string Log(uint64_t revision) const;
  std::string Audit(std::string_view project) const;  // the project's folder
  std::string Audit(std::string_view project, uint64_t revision) const;
  std::string AuditLog() const;  // the folder
  std::string AuditLog(uint64_t revision) const;

  std::string Progress(std::string_view key) const;
  std::string Duty(std::string_view duty) const;
  std::string Replicas() const;  // the folder
  std::string Replica(std::string_view replica_id) const;
  std::string UsageWriter(std::string_view writer) const;

 private:
  std::string prefix_;
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_STORE_ETCD_INTERNAL_LAYOUT_H_
