// The sidecar's in-memory key set: digest -> (ids, state), plus disabled
// projects (docs/design.md, "The sidecar's key table").
//
// The table is built for the one question the hot path asks. Each entry is 32
// bytes, two to a cache line: a 120-bit digest tag, the key id packed in 96
// bits, kind, state, and the index of its project in a table of project ids.
// Open addressing with linear probing, sized for its load (not rounded to a
// power of two), behind a Bloom filter that keeps most unknown keys from
// waiting for memory. Validate prefetches the entry's and the filter's cache
// lines as soon as the digest is known; only a key not in the table pays for
// its checksum.
//
// Readers take no lock: an epoch guard (sidecar/epoch.h) keeps the table they
// read allocated, and a sequence counter tells them to look again if a writer
// changed the table meanwhile. A writer (events, snapshots) never waits for a
// validation except to free a table it replaced. Expiry times, which few keys
// have, live in a small side map replaced whole when one changes.
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
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
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
  // The first 15 bytes of a key's SHA-256: what the table keeps of a digest.
  // Forging a key that matches one of N tags takes about 2^120 / N hashes.
  static constexpr size_t kTagBytes = 15;
  using Tag = std::array<uint8_t, kTagBytes>;
  // Ids without their prefixes.
  using KeyId = std::array<char, 16>;
  using ProjectId = std::array<char, 12>;

  // One key as the table holds it, spelled out (state files, tests).
  struct Record {
    Tag tag;
    KeyId key_id;
    ProjectId project_id;
    uint8_t kind = 0;           // v1::KeyKind
    uint8_t state = 0;          // v1::KeyState
    int64_t expire_micros = 0;  // 0: never
  };

  // One v1::KeyEntry's fields as they were sent, not yet checked: what a
  // snapshot chunk decoded in place yields (sidecar/snapshot_chunk.h). Kind
  // and state are the wire's values, as a protobuf enum field reads them.
  struct EntryFields {
    std::string_view digest;
    std::string_view key_id;
    std::string_view project_id;
    int32_t kind = 0;
    int32_t state = 0;
    bool has_expire_time = false;
    int64_t expire_seconds = 0;
    int32_t expire_nanos = 0;
  };

  struct Table;     // the slots; private to key_set.cc
  struct Projects;  // project ids by index; private to key_set.cc
  using Expiries = absl::flat_hash_map<Tag, int64_t>;

  // Accumulates a snapshot to the side, then becomes the table at once.
  // Each entry is encoded as it arrives, into the 32 bytes its slot will
  // hold, with its project interned and its expiry noted, so that Replace
  // only places slots.
  class Builder {
   public:
    Builder();
    ~Builder();
    // INVALID_ARGUMENT for an entry the authority could not have sent (bad
    // digest length or ids), RESOURCE_EXHAUSTED past 16,777,216 projects;
    // the entry is not added and the caller decides whether to go on.
    absl::Status Add(const v1::KeyEntry& entry);
    absl::Status Add(const EntryFields& entry);  // checked exactly as a KeyEntry
    absl::Status Add(const Record& record);
    absl::Status AddDisabledProject(std::string_view project_id);
    size_t size() const { return size_; }

   private:
    friend class KeySet;
    struct Slab;  // encoded entries; private to key_set.cc
    absl::Status AddChecked(const Record& record);

    std::vector<std::unique_ptr<Slab>> slabs_;  // appended to, never copied
    size_t size_ = 0;
    std::unique_ptr<Projects> projects_;
    std::unique_ptr<Expiries> expiries_;
  };

  KeySet();
  ~KeySet();

  // The verdict for `key` at time `now`. Takes no lock.
  Validation Validate(std::string_view key, absl::Time now) const;
  // The same, reading the clock only for a key that has an expiry time (few
  // do; a clock read costs as much as the SHA-256 on some virtual machines).
  Validation Validate(std::string_view key) const;
  // The same, with the digest already computed and the format already
  // checked (for benchmarks of the lookup alone).
  Validation Lookup(const Digest& digest, v1::KeyKind kind, absl::Time now) const;

  // Replaces everything with what `builder` holds. Leaves `builder` empty.
  // Later records for the same tag win.
  void Replace(Builder& builder);
  // The same, handing `around_swap` the swap itself (the instant readers
  // move to the new table), which it must call once: a caller that keeps
  // state beside the key set calls it under its own lock, so that whoever
  // reads that state under the lock finds it agreeing with the keys served.
  // The table is built before, and the old one freed after, outside it.
  void Replace(Builder& builder,
               absl::FunctionRef<void(absl::FunctionRef<void()> swap)> around_swap);

  // Applies one revision's changes, all or nothing: INVALID_ARGUMENT and no
  // change when any entry, removed digest or project id is malformed.
  // Readers see the whole event or none of it.
  absl::Status Apply(const v1::KeyEvent& event);

  size_t size() const { return size_.load(std::memory_order_relaxed); }
  // Every key, in table order, and every disabled project, at one revision.
  std::vector<Record> Records() const;
  std::vector<std::string> DisabledProjects() const;  // "prj_…", sorted
  // Every entry, sorted, as "tag-hex key_id kind state expire project" lines;
  // for tests that compare whole sets.
  std::vector<std::string> Dump() const;
  // Bytes the table, the project ids and the expiry map hold.
  size_t MemoryBytes() const;

 private:
  struct Found;
  // Finds `tag` under an epoch guard the caller holds.
  bool Find(const Tag& tag, Found& out) const;
  // `now` null: read the clock if the verdict needs it.
  Validation Check(std::string_view key, const absl::Time* now) const;
  Validation Verdict(const Found& f, v1::KeyKind kind, const absl::Time* now) const;
  // Runs `change` on the table inside one writer section: readers that
  // overlap it look again.
  template <typename F>
  void Write(F change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Makes room for `more` entries, rebuilding the table when it would pass
  // its maximum load.
  void Reserve(size_t more) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  // Readers load these inside an EpochGuard and a sequence check; a writer
  // changes them inside Write() and frees replaced ones after
  // WaitForReaders().
  std::atomic<uint64_t> seq_{0};  // odd while a writer is changing the table
  std::atomic<Table*> table_;
  std::atomic<Projects*> projects_;
  std::atomic<const Expiries*> expiries_;
  std::atomic<size_t> size_{0};

  // One writer at a time; readers never take it.
  mutable Mutex write_mu_;
};

}  // namespace latchkey

#endif  // LATCHKEY_SIDECAR_KEY_SET_H_
