// Counts validations per key and reports them to the authority.
//
// Record() is on the hot path: one of 16 shard locks, held for one hash map
// update. A reporter thread takes the counts every interval (and once more on
// Stop) and sends them with KeySync.ReportUsage; counts a failed report could
// not deliver are merged back and sent next time.
//
// A UsageReporter is safe for concurrent access from multiple threads.
#ifndef LATCHKEY_SIDECAR_USAGE_H_
#define LATCHKEY_SIDECAR_USAGE_H_

#include <grpcpp/grpcpp.h>

#include <array>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "latchkey/v1/key_sync.grpc.pb.h"

namespace latchkey {

class UsageReporter {
 public:
  UsageReporter(std::shared_ptr<grpc::Channel> channel, std::string token, std::string sidecar_id,
                absl::Duration interval);
  ~UsageReporter();  // Stop()

  void Record(std::string_view key_id, absl::Time when);

  void Start();
  // Flushes once more and stops. Idempotent.
  void Stop();

  // Sends what has been counted now. OK when there was nothing to send.
  grpc::Status Flush();

 private:
  struct Count {
    uint64_t count = 0;
    int64_t last_used_micros = 0;
  };
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, Count> counts ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kShards = 16;

  Shard& ShardFor(std::string_view key_id);
  void Loop();

  // Constant after construction.
  const std::unique_ptr<v1::KeySync::Stub> stub_;
  const std::string token_;
  const std::string sidecar_id_;
  const absl::Duration interval_;

  std::array<Shard, kShards> shards_;
  absl::Mutex flush_mu_;  // one report at a time
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace latchkey

#endif  // LATCHKEY_SIDECAR_USAGE_H_
