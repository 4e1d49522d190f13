// The replicated store: a KeyStore on an etcd v3 cluster, so that several
// stateless authorities share one state (docs/design.md, "The etcd store").
#ifndef LATCHKEY_AUTHORITY_STORE_ETCD_ETCD_STORE_H_
#define LATCHKEY_AUTHORITY_STORE_ETCD_ETCD_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "authority/store/key_store.h"

namespace latchkey {

struct EtcdStoreOptions {
  std::vector<std::string> endpoints;  // HOST:PORT of cluster members
  std::string prefix = "/latchkey/";   // every key this store writes starts with it
  uint64_t event_retention = 100000;   // events kept for replay
  // TLS to etcd: all empty for plaintext; a CA alone for server-only TLS.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // One etcd call, across members and retries (and the resolution of a
  // transaction whose answer was lost), and one try of it on one member: a
  // member that dies, loses its leader or stops answering costs about one
  // attempt before the next member is asked.
  absl::Duration call_timeout = absl::Seconds(5);
  absl::Duration attempt_timeout = absl::Seconds(1);
};

// Connects to the cluster and opens the store under options.prefix, creating
// it (a new store id, revision 0) when the prefix holds none.
absl::StatusOr<std::unique_ptr<KeyStore>> OpenEtcdStore(const EtcdStoreOptions& options);

// What ImportIntoEtcd copied.
struct ImportReport {
  std::string store_id;
  uint64_t head = 0;  // revision
  size_t rows = 0;    // of every table
  size_t audit = 0;   // audit records (one per revision)
  size_t events = 0;  // retained for replay: the newest options.event_retention
};

// Copies `source` into options.prefix of an etcd cluster (docs/operations.md,
// "Moving to etcd"): the same store id, head revision, rows and audit
// records, and the events options.event_retention keeps, so sidecars resume
// by replay when their authority changes store. `source` must not change
// meanwhile. FAILED_PRECONDITION when the prefix holds anything;
// OUT_OF_RANGE when `source` kept fewer events than options.event_retention.
// The store id and head are written last, in one transaction: a copy cut
// short leaves a prefix no replica opens and no second import accepts.
absl::StatusOr<ImportReport> ImportIntoEtcd(const KeyStore& source,
                                            const EtcdStoreOptions& options);

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_STORE_ETCD_ETCD_STORE_H_
