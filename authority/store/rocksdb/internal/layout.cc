#include "authority/store/rocksdb/internal/layout.h"

#include <rocksdb/write_batch.h>

#include <memory>

#include "authority/store/rocksdb/internal/rocks_status.h"
#include "common/strings.h"

namespace latchkey {

Cf CfOf(Table t) {
  switch (t) {
    case Table::kProjects:
      return kCfProjects;
    case Table::kKeys:
      return kCfKeys;
    case Table::kProjectKeys:
      return kCfProjectKeys;
    case Table::kDigests:
      return kCfDigests;
    case Table::kPrincipals:
      return kCfPrincipals;
    case Table::kGuards:
      return kCfGuards;
    case Table::kLeaks:
      return kCfLeaks;
    case Table::kWebhooks:
      return kCfWebhooks;
    case Table::kRoleBindings:
      return kCfRoleBindings;
    case Table::kSidecarKeys:
      return kCfSidecarKeys;
  }
  return kMeta;
}

std::string EncodeRevision(uint64_t r) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i, r >>= 8) s[i] = static_cast<char>(r & 0xff);
  return s;
}

uint64_t DecodeRevision(std::string_view s) {
  uint64_t r = 0;
  for (char c : s.substr(0, 8)) r = (r << 8) | static_cast<uint8_t>(c);
  return r;
}

std::string AuditKey(std::string_view project_id, uint64_t revision) {
  return StrCat(project_id, "/", EncodeRevision(revision));
}

absl::Status FillAuditLog(rocksdb::DB& db, const std::vector<rocksdb::ColumnFamilyHandle*>& cfs,
                          uint64_t head) {
  if (head == 0) return absl::OkStatus();
  std::unique_ptr<rocksdb::Iterator> logged(
      db.NewIterator(rocksdb::ReadOptions(), cfs[kCfAuditLog]));
  logged->SeekToFirst();
  if (logged->Valid()) return absl::OkStatus();
  if (!logged->status().ok()) return FromRocks(logged->status(), "audit log");
  rocksdb::WriteBatch batch;
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions(), cfs[kCfAudit]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    if (key.size() < 8) return absl::DataLossError("audit record key");
    const uint64_t revision = DecodeRevision(std::string_view(key.data() + key.size() - 8, 8));
    rocksdb::Status s = batch.Put(cfs[kCfAuditLog], EncodeRevision(revision), it->value());
    if (s.ok() && batch.Count() == 10000) {
      s = db.Write(rocksdb::WriteOptions(), &batch);
      batch.Clear();
    }
    if (!s.ok()) return FromRocks(s, "audit log");
  }
  if (!it->status().ok()) return FromRocks(it->status(), "audit records");
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return FromRocks(db.Write(wo, &batch), "audit log");
}

}  // namespace latchkey
