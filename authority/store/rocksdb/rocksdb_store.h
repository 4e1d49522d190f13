// The embedded store: a KeyStore in one RocksDB database on local disk, the
// default for one machine (docs/design.md, "The embedded store").
#ifndef LATCHKEY_AUTHORITY_STORE_ROCKSDB_ROCKSDB_STORE_H_
#define LATCHKEY_AUTHORITY_STORE_ROCKSDB_ROCKSDB_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "authority/store/key_store.h"

namespace latchkey {

struct RocksDbStoreOptions {
  std::string path;
  uint64_t event_retention = 100000;  // events kept for replay
  // One fsync shared by concurrent Syncs. Off: every Append is its own synced
  // write (kept to measure group commit against).
  bool group_commit = true;
  // Off: nothing is ever fsynced. Only for bulk loads in benchmarks.
  bool sync = true;
};

// Opens (creating when missing) the embedded RocksDB store at options.path.
absl::StatusOr<std::unique_ptr<KeyStore>> OpenRocksDbStore(const RocksDbStoreOptions& options);

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_STORE_ROCKSDB_ROCKSDB_STORE_H_
