#include "authority/fanout/sidecar_snapshot.h"

#include "authority/core/key_authority.h"
#include "authority/internal/records.pb.h"

namespace latchkey {
namespace {

constexpr size_t kKeysPerChunk = 256;  // <= 256 * 17 entries * ~100 B: under 1 MiB
constexpr size_t kProjectsPerChunk = 4096;

}  // namespace

SidecarSnapshot::SidecarSnapshot(KeyStore& store) : store_(store), snapshot_(store.Snapshot()) {}

absl::StatusOr<bool> SidecarSnapshot::Next(v1::SnapshotChunk& chunk) {
  switch (part_) {
    case Part::kProjects:
      if (absl::Status s = NextProjects(chunk); !s.ok()) return s;
      return true;
    case Part::kKeys:
      return NextKeys(chunk);
    case Part::kDone:
      return false;
  }
  return false;
}

absl::Status SidecarSnapshot::NextProjects(v1::SnapshotChunk& chunk) {
  while (chunk.disabled_project_ids_size() < static_cast<int>(kProjectsPerChunk)) {
    absl::StatusOr<Page> page =
        store_.Scan(Table::kProjects, "", cursor_, kProjectsPerChunk, snapshot_.get());
    if (!page.ok()) return page.status();
    for (const Row& row : page->rows) {
      internal::ProjectRecord rec;
      if (!rec.ParseFromString(row.value)) return absl::DataLossError("project record");
      if (!rec.project().api_access_enabled()) chunk.add_disabled_project_ids(row.key);
    }
    if (!page->more) {
      part_ = Part::kKeys;
      cursor_.clear();
      break;
    }
    cursor_ = page->rows.back().key;
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> SidecarSnapshot::NextKeys(v1::SnapshotChunk& chunk) {
  absl::StatusOr<Page> page =
      store_.Scan(Table::kKeys, "", cursor_, kKeysPerChunk, snapshot_.get());
  if (!page.ok()) return page.status();
  if (page->rows.empty()) {
    part_ = Part::kDone;
    return false;
  }
  for (const Row& row : page->rows) {
    internal::KeyRecord rec;
    if (!rec.ParseFromString(row.value)) return absl::DataLossError("key record");
    for (v1::KeyEntry& e : SidecarEntries(rec)) *chunk.add_entries() = std::move(e);
  }
  cursor_ = page->rows.back().key;
  return true;
}

}  // namespace latchkey
