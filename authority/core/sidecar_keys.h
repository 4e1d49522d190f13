// What sidecars hold of each key, kept beside the key records so that a
// snapshot reads only that (docs/design.md, "Snapshots from the sidecar
// keys").
//
// Table::kSidecarKeys holds, by key id, the key's entries (SidecarEntries)
// encoded as a v1::SnapshotChunk holding only them (SidecarKeysRow). Every
// mutation that changes what sidecars hold of a key writes its row in the
// same transaction (internal::PutKey), and deleting a key deletes it. The
// rows concatenate: protobuf parses messages written end to end as their
// merge, so a page of rows, end to end, is one SnapshotChunk with all their
// entries, sent without being parsed.
//
// Stores written before the table existed get it filled once, when the first
// authority of this version starts (KeyAuthority::Create): by one replica at
// a time, page by page through the mutation path, and marked done by the
// progress row kSidecarKeysFilled. Until that row exists no authority of this
// version serves.
#ifndef LATCHKEY_AUTHORITY_CORE_SIDECAR_KEYS_H_
#define LATCHKEY_AUTHORITY_CORE_SIDECAR_KEYS_H_

#include <string>
#include <vector>

#include "authority/internal/records.pb.h"
#include "latchkey/v1/key_sync.pb.h"

namespace latchkey {

// The digests a sidecar must know for one key: its current value and every
// retired value it remembers.
std::vector<v1::KeyEntry> SidecarEntries(const internal::KeyRecord& record);

// A key's row in Table::kSidecarKeys: `entries` as a v1::SnapshotChunk.
std::string SidecarKeysRow(const std::vector<v1::KeyEntry>& entries);

// The progress row (KeyStore::PutProgress) present once every key has its
// row, and the duty (Replicas::Lead) of the replica filling them.
inline constexpr char kSidecarKeysFilled[] = "format/sidecar_keys";
inline constexpr char kSidecarKeysDuty[] = "fill-sidecar-keys";

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_CORE_SIDECAR_KEYS_H_
