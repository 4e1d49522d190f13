// Validation counts per key, and their delivery to the authority.
//
// UsageCounter::Count is on the hot path: one of 16 shard locks, held for one
// hash map update. A ValidateBatch call counts its keys in a Tally first,
// without locks, and adds it at once: one lock per shard it touches. UsageReporter takes the counts
// every interval (and once more on Stop) and sends them with
// KeySync.ReportUsage, in parts small enough for the authority to take: a part
// refused as too large (RESOURCE_EXHAUSTED) is split in halves at once, down
// to one key, and later reports use the smaller size. Counts a failed report
// could not deliver go back into the counter for the next one; a part the
// authority refuses as INVALID_ARGUMENT would be refused again, so it is
// dropped with an error log instead.
//
// Both are safe for concurrent access from multiple threads.
#ifndef LATCHKEY_SIDECAR_USAGE_H_
#define LATCHKEY_SIDECAR_USAGE_H_

#include <grpcpp/grpcpp.h>

#include <array>
#include <atomic>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "common/mutex.h"
#include "common/periodic.h"
#include "latchkey/v1/key_sync.grpc.pb.h"
#include "sidecar/key_set.h"

namespace latchkey {

// What a verdict adds to the usage of its key: a use (VALID), a rejection
// of a key the authority issued (REVOKED, EXPIRED, PROJECT_DISABLED: who
// still sends a dead key), or nothing (no such key, or not a key at all).
enum class Use { kNone, kUsed, kRejected };
Use UseOf(v1::Verdict verdict);

class UsageCounter {
 private:
  struct Counts {
    uint64_t count = 0;
    int64_t last_used_micros = 0;
    uint64_t rejected = 0;
    int64_t last_rejected_micros = 0;
    void Merge(const Counts& more);
    static Counts Of(Use use, absl::Time when);
  };
  static constexpr size_t kShards = 16;
  static size_t ShardOf(std::string_view key_id);

 public:
  // Counts for one thread to gather without locks, then Add at once.
  class Tally {
   public:
    void Count(const Validation& v, absl::Time when);

   private:
    friend class UsageCounter;
    std::array<absl::flat_hash_map<std::array<char, 20>, UsageCounter::Counts>, kShards> shards_;
  };

  // Counts the verdict for its key (UseOf).
  void Count(const Validation& v, absl::Time when);
  void Add(const Tally& tally);
  // A VALID verdict for the key.
  void Record(std::string_view key_id, absl::Time when);
  // A verdict other than VALID for a key the sidecar knows (REVOKED, EXPIRED,
  // PROJECT_DISABLED): who still sends a dead key.
  void RecordRejected(std::string_view key_id, absl::Time when);
  // Adds counts back (from a report that failed).
  void Merge(const v1::ReportUsageRequest& usage);
  // Takes every count, leaving none.
  v1::ReportUsageRequest Drain();

 private:
  struct Shard {
    Mutex mu;
    absl::flat_hash_map<std::string, Counts> counts ABSL_GUARDED_BY(mu);
    void Merge(std::string_view key_id, const Counts& more) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  };
  void Add(std::string_view key_id, const Counts& more);

  std::array<Shard, kShards> shards_;
};

// Splits `usage` into reports whose serialized size stays under `max_bytes`
// (a single key's usage always fits), in order.
std::vector<v1::ReportUsageRequest> SplitUsage(const v1::ReportUsageRequest& usage,
                                               size_t max_bytes);

class UsageReporter {
 public:
  static constexpr size_t kMaxReportBytes = 1 << 20;  // a quarter of gRPC's default limit

  UsageReporter(std::shared_ptr<grpc::Channel> channel, std::string token, std::string sidecar_id,
                absl::Duration interval);
  ~UsageReporter();  // Stop()

  UsageCounter& counter() { return counter_; }

  void Start();
  // Flushes once more and stops. Idempotent.
  void Stop();
  // Sends what has been counted now. OK when there was nothing to send.
  grpc::Status Flush();

 private:
  grpc::Status Send(const v1::ReportUsageRequest& report);

  // Constant after construction.
  const std::unique_ptr<v1::KeySync::Stub> stub_;
  const std::string token_;
  const std::string sidecar_id_;
  const absl::Duration interval_;

  UsageCounter counter_;
  Mutex flush_mu_;  // one report at a time
  size_t report_bytes_ ABSL_GUARDED_BY(flush_mu_) = kMaxReportBytes;
  std::atomic<bool> stopped_{false};
  std::unique_ptr<Periodic> ticker_;  // Flush every interval
};

}  // namespace latchkey

#endif  // LATCHKEY_SIDECAR_USAGE_H_
