#include "authority/fanout/sidecar_snapshot.h"

#include "authority/internal/records.pb.h"
#include "common/strings.h"
#include "latchkey/v1/key_sync.pb.h"

namespace latchkey {
namespace {

// A chunk takes rows until it holds this much. A row is one key's entries: at
// most 17 (16 retired values) of about 100 bytes, so a chunk stays well under
// 1 MiB.
constexpr size_t kChunkBytes = 512 * 1024;
// Room for the row that fills a chunk, reserved with it: the largest row.
constexpr size_t kRowBytes = 17 * 100;
constexpr size_t kProjectsPerChunk = 4096;

// The tag of v1::SnapshotChunk.entries: field 1, length-delimited.
constexpr unsigned char kEntriesTag = (v1::SnapshotChunk::kEntriesFieldNumber << 3) | 2;

}  // namespace

bool IsSidecarKeysRow(std::string_view row) {
  size_t at = 0;
  while (at < row.size()) {
    if (static_cast<unsigned char>(row[at++]) != kEntriesTag) return false;
    uint64_t length = 0;
    for (int shift = 0;; shift += 7) {
      if (at == row.size() || shift > 28) return false;
      const unsigned char b = static_cast<unsigned char>(row[at++]);
      length |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) break;
    }
    if (length > row.size() - at) return false;
    at += length;
  }
  return !row.empty();  // every key has its current value's entry
}

SidecarSnapshot::SidecarSnapshot(KeyStore& store)
    : store_(store), snapshot_(store.Snapshot()), revision_(snapshot_->revision()) {}

absl::StatusOr<bool> SidecarSnapshot::Next(std::string& chunk) {
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

absl::Status SidecarSnapshot::NextProjects(std::string& chunk) {
  v1::SnapshotChunk projects;
  while (projects.disabled_project_ids_size() < static_cast<int>(kProjectsPerChunk)) {
    absl::StatusOr<Page> page =
        store_.Scan(Table::kProjects, "", cursor_, kProjectsPerChunk, snapshot_.get());
    if (!page.ok()) return page.status();
    for (const Row& row : page->rows) {
      internal::ProjectRecord rec;
      if (!rec.ParseFromString(row.value)) return absl::DataLossError("project record");
      if (!rec.project().api_access_enabled()) projects.add_disabled_project_ids(row.key);
    }
    if (!page->more) {
      part_ = Part::kKeys;
      cursor_.clear();
      break;
    }
    cursor_ = page->rows.back().key;
  }
  chunk = projects.SerializeAsString();
  return absl::OkStatus();
}

absl::StatusOr<bool> SidecarSnapshot::NextKeys(std::string& chunk) {
  std::string keys;
  keys.reserve(kChunkBytes + kRowBytes);
  absl::Status bad;
  bool full = false;
  absl::Status read =
      store_.ForEach(Table::kSidecarKeys, cursor_, snapshot_.get(),
                     [&](std::string_view key, std::string_view row) {
                       if (keys.size() >= kChunkBytes) {
                         full = true;
                         return false;
                       }
                       if (!IsSidecarKeysRow(row)) {
                         bad = absl::DataLossError(StrCat("the sidecar keys row of ", key));
                         return false;
                       }
                       keys += row;  // rows end to end: one chunk holding all their entries
                       cursor_.assign(key);
                       return true;
                     });
  if (!read.ok()) return read;
  if (!bad.ok()) return bad;
  if (!full) {
    part_ = Part::kDone;
    snapshot_.reset();  // a kept snapshot (SharedSnapshots) holds no store version
  }
  if (keys.empty()) return false;
  chunk = std::move(keys);
  return true;
}

}  // namespace latchkey
