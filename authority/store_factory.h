// The store --store names, opened once with everything that differs between
// stores, so that the rest of the server never asks which one it runs on.
#ifndef LATCHKEY_AUTHORITY_STORE_FACTORY_H_
#define LATCHKEY_AUTHORITY_STORE_FACTORY_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "authority/core/key_authority.h"
#include "authority/options.h"
#include "authority/store/key_store.h"
#include "common/crypto.h"

namespace latchkey {

struct OpenedStore {
  std::unique_ptr<KeyStore> store;
  Sealer sealer;
  // The first ADMIN's token: written there on first start (embedded), or
  // read from there (etcd's --bootstrap-token-file).
  std::string admin_token_path;
  // Several replicas share the store (etcd): the commit listener hears their
  // commits too, receipts are shared among them, and health follows the
  // store's reachability.
  bool shared = false;
  // Creates the first ADMIN when the store has none. The embedded store
  // writes a new token to admin_token_path; a shared store takes the
  // bootstrap token, and without one refuses to start empty.
  std::function<absl::Status(KeyAuthority&)> bootstrap;
};

// INVALID_ARGUMENT for a store name other than rocksdb and etcd; otherwise
// the store's own reasons (a missing master key, an unreachable cluster).
// `options` must outlive the returned bootstrap.
absl::StatusOr<OpenedStore> OpenStore(const AuthorityOptions& options);

// Where the store of `options` lives, for the log: "data dir D" or "etcd
// A,B prefix P".
std::string StoreDescription(const AuthorityOptions& options);

// The embedded store's master key file: --master-key-file, or master.key in
// the data dir.
std::string EmbeddedMasterKeyPath(const AuthorityOptions& options);

// latchkey-authority migrate (docs/operations.md, "Moving to etcd"): copies
// the embedded store in options.data_dir into options.etcd, which must be an
// empty prefix. The store must not be in use (RocksDB refuses a second
// opener).
absl::StatusOr<ImportReport> MigrateToEtcd(const AuthorityOptions& options);

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_STORE_FACTORY_H_
