// How the embedded store lays out its data in one RocksDB database
// (docs/design.md, "The embedded store"): one column family per table and
// log; the default column family holds the store id and the revision.
#ifndef LATCHKEY_AUTHORITY_STORE_ROCKSDB_INTERNAL_LAYOUT_H_
#define LATCHKEY_AUTHORITY_STORE_ROCKSDB_INTERNAL_LAYOUT_H_

#include <rocksdb/db.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "authority/store/key_store.h"

namespace latchkey {

inline constexpr char kStoreIdKey[] = "store_id";
inline constexpr char kRevisionKey[] = "revision";
inline constexpr char kUsageWriter[] = "0";  // the one writer of usage (KeyStore::UsageWriter)

// Column families, in the order they are opened. Index 0 is RocksDB's default.
enum Cf : size_t {
  kMeta = 0,
  kCfProjects,
  kCfKeys,
  kCfProjectKeys,
  kCfDigests,
  kCfPrincipals,
  kCfEvents,
  kCfAudit,
  kCfUsage,
  kCfGuards,
  kCfLeaks,
  kCfAuditLog,
  kCfProgress,
  kCfWebhooks,
  kCfRoleBindings,
  kCfSidecarKeys,
  kCfCount
};
inline constexpr std::array<std::string_view, kCfCount> kCfNames = {
    "default",  // rocksdb::kDefaultColumnFamilyName
    TableName(Table::kProjects),
    TableName(Table::kKeys),
    TableName(Table::kProjectKeys),
    TableName(Table::kDigests),
    TableName(Table::kPrincipals),
    "events",
    "audit",
    "usage",
    TableName(Table::kGuards),
    TableName(Table::kLeaks),
    "audit_log",
    "progress",
    TableName(Table::kWebhooks),
    TableName(Table::kRoleBindings),
    TableName(Table::kSidecarKeys)};
// Tables earlier versions kept and this one drops when it opens their
// database: "tokens" (token digest -> principal id) was written, never read.
inline constexpr std::array<std::string_view, 1> kRetiredCfNames = {"tokens"};

// The column family of `t`.
Cf CfOf(Table t);

// Big-endian, so that RocksDB's byte order is revision order.
std::string EncodeRevision(uint64_t r);
uint64_t DecodeRevision(std::string_view s);

// Audit rows: project id (empty for principal changes) + '/' + revision.
std::string AuditKey(std::string_view project_id, uint64_t revision);

// A store written before the audit log by revision existed (its column
// family is new and empty) gets it once, from the audit records by project.
absl::Status FillAuditLog(rocksdb::DB& db, const std::vector<rocksdb::ColumnFamilyHandle*>& cfs,
                          uint64_t head);

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_STORE_ROCKSDB_INTERNAL_LAYOUT_H_
