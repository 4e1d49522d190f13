#include "authority/store_factory.h"

#include <sys/stat.h>

#include <filesystem>
#include <limits>

#include "absl/strings/str_join.h"
#include "authority/store/etcd/etcd_store.h"  // its types; its code with LATCHKEY_WITH_ETCD only
#include "authority/store/rocksdb/rocksdb_store.h"
#include "common/files.h"
#include "common/log.h"
#include "common/strings.h"

namespace latchkey {
namespace {

#if !LATCHKEY_WITH_ETCD
absl::Status NoEtcd() {
  return absl::UnimplementedError(
      "this latchkey-authority was built without the etcd store (LATCHKEY_WITH_ETCD=OFF)");
}
#endif

}  // namespace

std::string EmbeddedMasterKeyPath(const AuthorityOptions& options) {
  return options.master_key_file.empty() ? options.data_dir + "/master.key"
                                         : options.master_key_file;
}

#if LATCHKEY_WITH_ETCD
absl::StatusOr<ImportReport> MigrateToEtcd(const AuthorityOptions& options) {
  const std::string db = options.data_dir + "/db";
  if (!std::filesystem::exists(db + "/CURRENT")) {
    return absl::NotFoundError("no embedded store in " + options.data_dir);
  }
  RocksDbStoreOptions source_options;
  source_options.path = db;
  // Opening with a retention trims events beyond it; this copy keeps them all.
  source_options.event_retention = std::numeric_limits<uint64_t>::max();
  absl::StatusOr<std::unique_ptr<KeyStore>> source = OpenRocksDbStore(source_options);
  if (!source.ok()) {
    return absl::Status(source.status().code(),
                        StrCat(std::string(source.status().message()),
                               " (stop the authority that uses it before migrating)"));
  }
  EtcdStoreOptions etcd = options.etcd;
  etcd.event_retention = options.event_retention;
  return ImportIntoEtcd(**source, etcd);
}
#else
absl::StatusOr<ImportReport> MigrateToEtcd(const AuthorityOptions&) { return NoEtcd(); }
#endif

namespace {

// The embedded store in the data dir, with its master key (made on first
// start, never replaced while sealed values need it).
absl::StatusOr<OpenedStore> OpenEmbedded(const AuthorityOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return absl::InternalError("cannot create " + options.data_dir + ": " + ec.message());
  ::chmod(options.data_dir.c_str(), 0700);
  RocksDbStoreOptions store_options;
  store_options.path = options.data_dir + "/db";
  store_options.event_retention = options.event_retention;
  store_options.group_commit = options.group_commit;
  absl::StatusOr<std::unique_ptr<KeyStore>> store = OpenRocksDbStore(store_options);
  if (!store.ok()) return store.status();

  const std::string master_key = EmbeddedMasterKeyPath(options);
  // A new master key is made only for a store with nothing sealed yet: a new
  // key would never open the values already there.
  if (absl::StatusOr<std::string> existing = ReadPrivateFile(master_key);
      existing.ok() && existing->empty()) {
    absl::StatusOr<bool> sealed = KeyAuthority::HoldsSealedValues(**store);
    if (!sealed.ok()) return sealed.status();
    if (*sealed) {
      return absl::FailedPreconditionError(
          "master key file " + master_key +
          " is missing or empty, but the store holds API key values sealed with a master key: "
          "restore the original file (a new key cannot open them)");
    }
  }
  absl::StatusOr<Sealer> sealer = Sealer::LoadOrCreate(master_key);
  if (!sealer.ok()) return sealer.status();
  const std::string token_path = options.data_dir + "/admin.token";
  return OpenedStore{.store = *std::move(store),
                     .sealer = *std::move(sealer),
                     .admin_token_path = token_path,
                     .shared = false,
                     .bootstrap = [token_path](KeyAuthority& authority) -> absl::Status {
                       absl::StatusOr<bool> created = authority.BootstrapAdmin(token_path);
                       if (!created.ok()) return created.status();
                       if (*created)
                         spdlog::info("created ADMIN principal; token written to {}", token_path);
                       return absl::OkStatus();
                     }};
}

#if LATCHKEY_WITH_ETCD
// An empty shared store gets its first ADMIN from --bootstrap-token-file (the
// first replica to commit creates it; the others find it). Without the flag
// an empty store is refused: a generated token would sit on one replica only.
absl::Status BootstrapShared(const AuthorityOptions& options, const KeyStore& store,
                             KeyAuthority& authority) {
  if (options.bootstrap_token_file.empty()) {
    absl::StatusOr<Page> any = store.Scan(Table::kPrincipals, "", "", 1);
    if (!any.ok()) return any.status();
    if (any->rows.empty()) {
      return absl::FailedPreconditionError(
          "the etcd store has no principals yet: start with --bootstrap-token-file FILE (a "
          "token from `latchkey-authority new-token`) to create the first ADMIN");
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> token = ReadTokenFile(options.bootstrap_token_file);
  if (!token.ok()) return token.status();
  absl::StatusOr<bool> created = authority.BootstrapAdminWithToken(*token);
  if (!created.ok()) return created.status();
  if (*created) {
    spdlog::info("created ADMIN principal admin with the token in {}",
                 options.bootstrap_token_file);
  }
  return absl::OkStatus();
}

// The replicated store. Every replica is given the same master key; none
// makes one.
absl::StatusOr<OpenedStore> OpenEtcd(const AuthorityOptions& options) {
  if (options.etcd.endpoints.empty()) {
    return absl::InvalidArgumentError("--store=etcd needs --etcd-endpoints HOST:PORT,...");
  }
  if (options.master_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--store=etcd needs --master-key-file: every replica shares one master key, and none "
        "generates it");
  }
  absl::StatusOr<Sealer> sealer = Sealer::Load(options.master_key_file);
  if (!sealer.ok()) return sealer.status();
  EtcdStoreOptions etcd = options.etcd;
  etcd.event_retention = options.event_retention;
  absl::StatusOr<std::unique_ptr<KeyStore>> store = OpenEtcdStore(etcd);
  if (!store.ok()) return store.status();
  KeyStore* shared = store->get();
  return OpenedStore{.store = *std::move(store),
                     .sealer = *std::move(sealer),
                     .admin_token_path = options.bootstrap_token_file,
                     .shared = true,
                     .bootstrap = [&options, shared](KeyAuthority& authority) {
                       return BootstrapShared(options, *shared, authority);
                     }};
}
#else
absl::StatusOr<OpenedStore> OpenEtcd(const AuthorityOptions&) { return NoEtcd(); }
#endif

}  // namespace

std::string StoreDescription(const AuthorityOptions& options) {
  if (options.store == "etcd") {
    return StrCat("etcd ", absl::StrJoin(options.etcd.endpoints, ","), " prefix ",
                  options.etcd.prefix);
  }
  return "data dir " + options.data_dir;
}

absl::StatusOr<OpenedStore> OpenStore(const AuthorityOptions& options) {
  if (options.store == "rocksdb") return OpenEmbedded(options);
  if (options.store == "etcd") return OpenEtcd(options);
  return absl::InvalidArgumentError("--store is rocksdb or etcd, not " + options.store);
}

}  // namespace latchkey
