// The sidecar's in-memory key set: digest -> entry, plus disabled projects.
//
// Validate does the whole check from memory: format, SHA-256, one hash lookup
// in one of 32 shards (under that shard's reader lock), expiry and project
// access. Live events take one shard's writer lock per entry; a snapshot is
// built to the side (KeySet::Builder) and swapped in while every shard lock is
// held, which takes microseconds whatever the size.
//
// A KeySet is safe for concurrent access from multiple threads without any
// external synchronization. A Builder is used by one thread.
#ifndef LATCHKEY_SIDECAR_KEY_SET_H_
#define LATCHKEY_SIDECAR_KEY_SET_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "common/crypto.h"
#include "common/mutex.h"
#include "latchkey/v1/key_sync.pb.h"
#include "latchkey/v1/validator.pb.h"

namespace latchkey {

// What Validate found. Ids are empty for MALFORMED and UNKNOWN. They are kept
// packed (no allocation on the hot path) and spelled out on request.
struct Validation {
  v1::Verdict verdict = v1::VERDICT_UNSPECIFIED;
  v1::KeyKind kind = v1::KEY_KIND_UNSPECIFIED;
  std::array<char, 16> packed_key_id{};
  std::array<char, 12> packed_project_id{};

  bool has_ids() const { return packed_key_id[0] != '\0'; }
  std::string key_id() const;                 // "key_…", or "" without ids
  std::array<char, 20> key_id_chars() const;  // the same, without allocating
  std::string project_id() const;             // "prj_…", or "" without ids
  void ToProto(v1::ValidateResponse* out) const;
};

class KeySet {
 public:
  static constexpr size_t kShards = 32;  // Replace holds all at once: TSan tracks <= 64

  // Ids are stored without their prefixes, in fixed arrays: an entry holds no
  // pointer, so a million keys are a few large allocations.
  using KeyId = std::array<char, 16>;
  using ProjectId = std::array<char, 12>;
  struct Entry {
    KeyId key_id;
    ProjectId project_id;
    uint8_t kind;           // v1::KeyKind
    uint8_t state;          // v1::KeyState
    int64_t expire_micros;  // 0: never
  };

  struct DigestHash {
    // Digests are uniformly random: their first 8 bytes are a good hash.
    size_t operator()(const Digest& d) const;
  };
  using Map = absl::flat_hash_map<Digest, Entry, DigestHash>;

  // Accumulates a snapshot to the side.
  class Builder {
   public:
    Builder();
    // INVALID_ARGUMENT for an entry the authority could not have sent (bad
    // digest length or ids); the caller decides whether to go on.
    absl::Status Add(const v1::KeyEntry& entry);
    absl::Status AddDisabledProject(std::string_view project_id);
    size_t size() const;

   private:
    friend class KeySet;
    std::array<Map, kShards> shards_;
    absl::flat_hash_set<ProjectId> disabled_;
  };

  KeySet() = default;

  // The verdict for `key` at time `now`. Never blocks for long.
  Validation Validate(std::string_view key, absl::Time now) const;
  // The same, with the digest already computed and the format already
  // checked (for benchmarks of the lookup alone).
  Validation Lookup(const Digest& digest, v1::KeyKind kind, absl::Time now) const;

  // Replaces everything with what `builder` holds. Leaves `builder` empty.
  // Locks every shard in a loop, which clang's thread-safety analysis cannot
  // follow; the locking is in the body.
  void Replace(Builder& builder) ABSL_NO_THREAD_SAFETY_ANALYSIS;

  // Applies one revision's changes, all or nothing: INVALID_ARGUMENT and no
  // change when any entry, removed digest or project id is malformed.
  absl::Status Apply(const v1::KeyEvent& event);

  size_t size() const;
  // Every entry and disabled project, in the form a snapshot sends them.
  // Shard by shard: an event applied meanwhile may show in some shards only.
  void Export(v1::SnapshotChunk* out) const;
  // Every entry, sorted, as "digest-hex key_id state expire project" lines;
  // for tests that compare whole sets.
  std::vector<std::string> Dump() const;
  std::vector<std::string> DisabledProjects() const;

 private:
  struct Shard {
    mutable Mutex mu;
    Map map ABSL_GUARDED_BY(mu);
  };
  static size_t ShardOf(const Digest& d) { return d[8] % kShards; }
  bool ProjectDisabled(const ProjectId& p) const;

  std::array<Shard, kShards> shards_;
  std::atomic<size_t> disabled_count_{0};  // lets the common case skip disabled_mu_
  mutable Mutex disabled_mu_;
  absl::flat_hash_set<ProjectId> disabled_ ABSL_GUARDED_BY(disabled_mu_);
};

}  // namespace latchkey

#endif  // LATCHKEY_SIDECAR_KEY_SET_H_
