#include "sidecar/key_set.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <utility>

#include "absl/time/clock.h"
#include "common/key_format.h"
#include "common/strings.h"
#include "sidecar/epoch.h"

namespace latchkey {
namespace {

// A slot is four words, read and written with relaxed atomics inside the
// sequence check (KeySet::Write and Find):
//   w0  tag bytes 0-7 (also the hash: digests are uniformly random)
//   w1  tag bytes 8-14, then the meta byte
//   w2  key id characters 0-9, 6 bits each
//   w3  key id characters 10-15 (36 bits), then the project index (28 bits)
struct alignas(32) Slot {
  std::atomic<uint64_t> w[4];
};
static_assert(sizeof(Slot) == 32);

// The meta byte. An all-zero slot is empty.
constexpr uint64_t kStatusMask = 3;
constexpr uint64_t kEmpty = 0, kFull = 1, kRemoved = 2;
constexpr uint64_t kSecret = 1 << 2;
constexpr uint64_t kRevoked = 1 << 3;
constexpr uint64_t kExpires = 1 << 4;  // the expiry is in KeySet::Expiries
constexpr int kMetaShift = 56;
constexpr uint64_t kTagHighMask = (uint64_t{1} << kMetaShift) - 1;

constexpr int kProjectShift = 36;
constexpr uint64_t kLowMask36 = (uint64_t{1} << kProjectShift) - 1;

// A table grows (is rebuilt) past kMaxLoad of its slots used, counting
// removed ones, and is built at kBuildLoad: a hit probes about 1.7 slots and
// a miss about 6 on average, within one or two adjacent cache lines.
constexpr double kMaxLoad = 0.8;
constexpr double kBuildLoad = 0.65;
constexpr size_t kMinCapacity = 16;

constexpr size_t kHugePage = size_t{2} << 20;

// A split-block Bloom filter in front of the slots: 32-byte blocks of eight
// 32-bit words, one bit set per word per tag, 16 bits per entry the table
// can hold. About 2.5 bytes per key, small enough to stay in cache where the
// table does not, so most keys that are not in the table are answered
// without waiting for memory (false positives: about 0.1%, which then probe).
// Bits are never cleared: a removed key's bits stay until the next rebuild.
struct alignas(32) FilterBlock {
  std::atomic<uint32_t> w[8];
};
constexpr size_t kFilterBitsPerEntry = 16;
// Odd multipliers spreading one 32-bit hash over the eight words' bits.
constexpr std::array<uint32_t, 8> kFilterSalt = {0x9e3779b1u, 0x85ebca77u, 0xc2b2ae3du,
                                                 0x27d4eb2fu, 0x165667b1u, 0xd3a2646du,
                                                 0xfd7046c5u, 0xb55a4f09u};

constexpr size_t kChunkBits = 12;
constexpr size_t kChunk = size_t{1} << kChunkBits;
constexpr size_t kMaxChunks = 4096;  // 16,777,216 projects

// A base62 character as its 6-bit code, its index in kBase62Alphabet.
uint64_t Code(char c) {
  if (c <= '9') return static_cast<uint64_t>(c - '0');
  if (c <= 'Z') return static_cast<uint64_t>(c - 'A' + 10);
  return static_cast<uint64_t>(c - 'a' + 36);
}

struct Words {
  uint64_t w[4];
};

void SplitTag(const uint8_t* tag, uint64_t& t0, uint64_t& t1) {
  std::memcpy(&t0, tag, 8);
  t1 = 0;
  std::memcpy(&t1, tag + 8, KeySet::kTagBytes - 8);
}

Words Encode(const KeySet::Record& r, uint32_t project) {
  Words out;
  uint64_t t0, t1;
  SplitTag(r.tag.data(), t0, t1);
  uint64_t meta = kFull;
  if (r.kind == v1::SECRET_KEY) meta |= kSecret;
  if (r.state == v1::KEY_STATE_REVOKED) meta |= kRevoked;
  if (r.expire_micros != 0) meta |= kExpires;
  out.w[0] = t0;
  out.w[1] = t1 | (meta << kMetaShift);
  out.w[2] = 0;
  for (int i = 0; i < 10; ++i) out.w[2] |= Code(r.key_id[i]) << (6 * i);
  out.w[3] = 0;
  for (int i = 10; i < 16; ++i) out.w[3] |= Code(r.key_id[i]) << (6 * (i - 10));
  out.w[3] |= uint64_t{project} << kProjectShift;
  return out;
}

KeySet::KeyId DecodeKeyId(uint64_t w2, uint64_t w3) {
  KeySet::KeyId id;
  for (int i = 0; i < 10; ++i) id[i] = kBase62Alphabet[(w2 >> (6 * i)) & 63];
  for (int i = 10; i < 16; ++i) id[i] = kBase62Alphabet[(w3 >> (6 * (i - 10))) & 63];
  return id;
}

KeySet::Tag TagOf(const Digest& d) {
  KeySet::Tag t;
  std::memcpy(t.data(), d.data(), t.size());
  return t;
}

template <size_t N>
bool PackId(std::string_view id, std::string_view prefix, std::array<char, N>& out) {
  if (!IsWellFormedId(id, prefix, N)) return false;
  std::memcpy(out.data(), id.data() + prefix.size(), N);
  return true;
}

template <size_t N>
std::string UnpackId(std::string_view prefix, const std::array<char, N>& packed) {
  std::string out(prefix);
  out.append(packed.data(), N);
  return out;
}

absl::Status ToRecord(const KeySet::EntryFields& in, KeySet::Record& out) {
  if (in.digest.size() != sizeof(Digest)) {
    return absl::InvalidArgumentError("key entry digest is not 32 bytes");
  }
  std::memcpy(out.tag.data(), in.digest.data(), out.tag.size());
  if (!PackId(in.key_id, kKeyIdPrefix, out.key_id) ||
      !PackId(in.project_id, kProjectIdPrefix, out.project_id)) {
    return absl::InvalidArgumentError("key entry has a malformed key or project id");
  }
  if ((in.kind != v1::API_KEY && in.kind != v1::SECRET_KEY) ||
      (in.state != v1::KEY_STATE_ACTIVE && in.state != v1::KEY_STATE_REVOKED)) {
    return absl::InvalidArgumentError("key entry has an unknown kind or state");
  }
  out.kind = static_cast<uint8_t>(in.kind);
  out.state = static_cast<uint8_t>(in.state);
  out.expire_micros = 0;
  if (in.has_expire_time) {
    // As FromProto (common/time_util.h) reads a Timestamp.
    out.expire_micros = absl::ToUnixMicros(absl::FromUnixSeconds(in.expire_seconds) +
                                           absl::Nanoseconds(in.expire_nanos));
    if (out.expire_micros == 0) out.expire_micros = 1;  // the epoch itself
  }
  return absl::OkStatus();
}

absl::Status ToRecord(const v1::KeyEntry& in, KeySet::Record& out) {
  KeySet::EntryFields fields;
  fields.digest = in.digest();
  fields.key_id = in.key_id();
  fields.project_id = in.project_id();
  fields.kind = in.kind();
  fields.state = in.state();
  fields.has_expire_time = in.has_expire_time();
  fields.expire_seconds = in.expire_time().seconds();
  fields.expire_nanos = in.expire_time().nanos();
  return ToRecord(fields, out);
}

Validation Only(v1::Verdict verdict) {
  Validation v;
  v.verdict = verdict;
  return v;
}

}  // namespace

// --- the slots ---------------------------------------------------------------

struct KeySet::Table {
  explicit Table(size_t n)
      : capacity(std::max(n, kMinCapacity)),
        filter_blocks(
            std::max<size_t>(1, static_cast<size_t>(static_cast<double>(capacity) * kMaxLoad) *
                                        kFilterBitsPerEntry / 256 +
                                    1)),
        filter(new FilterBlock[filter_blocks]()) {
    const size_t bytes = capacity * sizeof(Slot);
    if (bytes < kHugePage) {
      // calloc: zeroed (empty) slots; the extra slot leaves room to align.
      raw = std::calloc(capacity + 2, sizeof(Slot));
      if (raw == nullptr) throw std::bad_alloc();
      const uintptr_t at = (reinterpret_cast<uintptr_t>(raw) + 63) & ~uintptr_t{63};
      slots = reinterpret_cast<Slot*>(at);
      return;
    }
    // A large table lives in huge pages where the kernel has them: a probe
    // anywhere in a million keys otherwise also misses the TLB, and a page
    // walk is more memory reads. Anonymous pages arrive zeroed.
    mapped = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    raw = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    madvise(raw, mapped, MADV_HUGEPAGE);  // advice: without it, 4 KiB pages
    slots = static_cast<Slot*>(raw);
  }
  ~Table() {
    delete[] filter;
    if (mapped != 0) {
      munmap(raw, mapped);
    } else {
      std::free(raw);
    }
  }
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  // Where probing for a tag starting with `t0` begins: t0 scaled to the
  // capacity (no power of two needed).
  size_t Home(uint64_t t0) const {
    return static_cast<size_t>((static_cast<unsigned __int128>(t0) * capacity) >> 64);
  }
  size_t Next(size_t i) const { return i + 1 == capacity ? 0 : i + 1; }

  // The filter block for a tag comes from its bytes 8-14 (t1); the bits in
  // it from bytes 0-3 (t0's low half), which barely move Home().
  const FilterBlock& Block(uint64_t t1) const {
    return filter[static_cast<size_t>((static_cast<unsigned __int128>(t1 << 8) * filter_blocks) >>
                                      64)];
  }
  void FilterAdd(uint64_t t0, uint64_t t1) {
    FilterBlock& b = const_cast<FilterBlock&>(Block(t1));
    const uint32_t h = static_cast<uint32_t>(t0);
    for (int i = 0; i < 8; ++i) {
      b.w[i].fetch_or(uint32_t{1} << ((h * kFilterSalt[i]) >> 27), std::memory_order_relaxed);
    }
  }
  // False: the tag is in no slot. True: it may be.
  bool MayContain(uint64_t t0, uint64_t t1) const {
    const FilterBlock& b = Block(t1);
    const uint32_t h = static_cast<uint32_t>(t0);
    bool all = true;
    for (int i = 0; i < 8; ++i) {
      all &= (b.w[i].load(std::memory_order_relaxed) >> ((h * kFilterSalt[i]) >> 27)) & 1;
    }
    return all;
  }

  // Writer only. The slot holding (t0, t1), or the first free one on its
  // probe path (removed slots are reused), and whether it holds the tag.
  Slot* Place(uint64_t t0, uint64_t t1, bool& found) {
    Slot* reusable = nullptr;
    for (size_t i = Home(t0);; i = Next(i)) {
      Slot& s = slots[i];
      const uint64_t w1 = s.w[1].load(std::memory_order_relaxed);
      const uint64_t status = (w1 >> kMetaShift) & kStatusMask;
      if (status == kEmpty) {
        found = false;
        return reusable != nullptr ? reusable : &s;
      }
      if (status == kRemoved) {
        if (reusable == nullptr) reusable = &s;
      } else if (s.w[0].load(std::memory_order_relaxed) == t0 && (w1 & kTagHighMask) == t1) {
        found = true;
        return &s;
      }
    }
  }

  // Starts loading the cache lines Put(w) reads first: the home slot and
  // the filter block.
  void Prefetch(const Words& w) const {
    __builtin_prefetch(&slots[Home(w.w[0])], 1);
    __builtin_prefetch(&Block(w.w[1] & kTagHighMask), 1);
  }

  // Writer only: stores `w` in the slot for its tag. True when it is new.
  bool Put(const Words& w) {
    bool found;
    Slot* s = Place(w.w[0], w.w[1] & kTagHighMask, found);
    if (!found &&
        ((s->w[1].load(std::memory_order_relaxed) >> kMetaShift) & kStatusMask) == kEmpty) {
      ++used;
    }
    for (int i = 0; i < 4; ++i) s->w[i].store(w.w[i], std::memory_order_relaxed);
    FilterAdd(w.w[0], w.w[1] & kTagHighMask);
    return !found;
  }

  size_t capacity;
  size_t filter_blocks;
  FilterBlock* filter;
  size_t used = 0;  // full and removed slots; writer only
  Slot* slots;
  void* raw;
  size_t mapped = 0;  // bytes mmapped, or 0 when raw came from calloc
};

// --- project ids ------------------------------------------------------------

struct KeySet::Projects {
  struct Entry {
    ProjectId id;                      // written once, before the index is published
    std::atomic<uint8_t> disabled{0};  // changed inside a writer section
  };

  Projects() = default;
  ~Projects() {
    for (auto& c : chunks) delete[] c.load(std::memory_order_relaxed);
  }
  Projects(const Projects&) = delete;
  Projects& operator=(const Projects&) = delete;

  // Writer only: the index of `id`, added when new. RESOURCE_EXHAUSTED past
  // kMaxChunks * kChunk projects.
  absl::Status Intern(const ProjectId& id, uint32_t& out) {
    auto [it, added] = index.try_emplace(id, count);
    if (!added) {
      out = it->second;
      return absl::OkStatus();
    }
    if (count == kMaxChunks * kChunk) {
      index.erase(it);
      return absl::ResourceExhaustedError("the key set holds its maximum of 16,777,216 projects");
    }
    std::atomic<Entry*>& chunk = chunks[count >> kChunkBits];
    if (chunk.load(std::memory_order_relaxed) == nullptr) {
      chunk.store(new Entry[kChunk], std::memory_order_release);
    }
    chunk.load(std::memory_order_relaxed)[count & (kChunk - 1)].id = id;
    out = count++;
    return absl::OkStatus();
  }

  // Null for an index a torn read made up.
  const Entry* Get(uint64_t i) const {
    if (i >= kMaxChunks * kChunk) return nullptr;
    const Entry* chunk = chunks[i >> kChunkBits].load(std::memory_order_acquire);
    return chunk == nullptr ? nullptr : &chunk[i & (kChunk - 1)];
  }
  Entry* Mutable(uint32_t i) { return &chunks[i >> kChunkBits].load()[i & (kChunk - 1)]; }

  size_t MemoryBytes() const {
    const size_t allocated = (count + kChunk - 1) / kChunk;
    return sizeof(*this) + allocated * kChunk * sizeof(Entry) +
           index.capacity() * (sizeof(std::pair<ProjectId, uint32_t>) + 1);
  }

  std::array<std::atomic<Entry*>, kMaxChunks> chunks{};
  uint32_t count = 0;                              // writer only
  absl::flat_hash_map<ProjectId, uint32_t> index;  // writer only
};

// What a reader copied out of a slot, inside one sequence check.
struct KeySet::Found {
  uint64_t w1, w2, w3;
  const Projects::Entry* project;
  bool disabled;
  int64_t expire_micros;
};

// --- Validation -------------------------------------------------------------

std::string Validation::key_id() const {
  return has_ids() ? UnpackId(kKeyIdPrefix, packed_key_id) : "";
}

std::array<char, 20> Validation::key_id_chars() const {
  std::array<char, 20> out;
  std::memcpy(out.data(), kKeyIdPrefix.data(), kKeyIdPrefix.size());
  std::memcpy(out.data() + kKeyIdPrefix.size(), packed_key_id.data(), packed_key_id.size());
  return out;
}

std::string Validation::project_id() const {
  return has_ids() ? UnpackId(kProjectIdPrefix, packed_project_id) : "";
}

void Validation::ToProto(v1::ValidateResponse* out) const {
  out->set_verdict(verdict);
  out->set_kind(kind);
  if (!has_ids()) return;
  std::string* key_id = out->mutable_key_id();
  key_id->assign(kKeyIdPrefix.data(), kKeyIdPrefix.size());
  key_id->append(packed_key_id.data(), packed_key_id.size());
  std::string* project_id = out->mutable_project_id();
  project_id->assign(kProjectIdPrefix.data(), kProjectIdPrefix.size());
  project_id->append(packed_project_id.data(), packed_project_id.size());
}

// --- Builder ----------------------------------------------------------------

// Encoded entries in arrival order, 2 MiB at a time: a builder of a million
// keys grows without copying what it holds.
constexpr size_t kSlabEntries = size_t{1} << 16;
struct KeySet::Builder::Slab {
  std::array<Words, kSlabEntries> entries;
};

KeySet::Builder::Builder()
    : projects_(std::make_unique<Projects>()), expiries_(std::make_unique<Expiries>()) {}
KeySet::Builder::~Builder() = default;

absl::Status KeySet::Builder::Add(const v1::KeyEntry& entry) {
  Record r;
  if (absl::Status s = ToRecord(entry, r); !s.ok()) return s;
  return AddChecked(r);
}

absl::Status KeySet::Builder::Add(const EntryFields& entry) {
  Record r;
  if (absl::Status s = ToRecord(entry, r); !s.ok()) return s;
  return AddChecked(r);
}

absl::Status KeySet::Builder::Add(const Record& r) {
  if (!AllBase62(std::string_view(r.key_id.data(), r.key_id.size())) ||
      !AllBase62(std::string_view(r.project_id.data(), r.project_id.size()))) {
    return absl::InvalidArgumentError("key record has a malformed key or project id");
  }
  if ((r.kind != v1::API_KEY && r.kind != v1::SECRET_KEY) ||
      (r.state != v1::KEY_STATE_ACTIVE && r.state != v1::KEY_STATE_REVOKED)) {
    return absl::InvalidArgumentError("key record has an unknown kind or state");
  }
  return AddChecked(r);
}

absl::Status KeySet::Builder::AddChecked(const Record& r) {
  uint32_t project;
  if (absl::Status s = projects_->Intern(r.project_id, project); !s.ok()) return s;
  if (size_ % kSlabEntries == 0) slabs_.emplace_back(new Slab);  // uninitialized: written next
  slabs_.back()->entries[size_ % kSlabEntries] = Encode(r, project);
  ++size_;
  if (r.expire_micros != 0) {
    (*expiries_)[r.tag] = r.expire_micros;
  } else if (!expiries_->empty()) {
    expiries_->erase(r.tag);  // an earlier record for the tag had one
  }
  return absl::OkStatus();
}

absl::Status KeySet::Builder::AddDisabledProject(std::string_view project_id) {
  ProjectId id;
  if (!PackId(project_id, kProjectIdPrefix, id)) {
    return absl::InvalidArgumentError("malformed disabled project id");
  }
  uint32_t p;
  if (absl::Status s = projects_->Intern(id, p); !s.ok()) return s;
  projects_->Mutable(p)->disabled.store(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

// --- KeySet -----------------------------------------------------------------

KeySet::KeySet()
    : table_(new Table(kMinCapacity)), projects_(new Projects), expiries_(new Expiries) {}

KeySet::~KeySet() {
  delete table_.load();
  delete projects_.load();
  delete expiries_.load();
}

Validation KeySet::Validate(std::string_view key, absl::Time now) const { return Check(key, &now); }

Validation KeySet::Validate(std::string_view key) const { return Check(key, nullptr); }

Validation KeySet::Check(std::string_view key, const absl::Time* now) const {
  // Length and prefix first: anything else is MALFORMED without hashing.
  if (key.size() != kKeyLength) return Only(v1::MALFORMED);
  const std::string_view prefix = key.substr(0, kApiKeyPrefix.size());
  const v1::KeyKind kind = prefix == kApiKeyPrefix      ? v1::API_KEY
                           : prefix == kSecretKeyPrefix ? v1::SECRET_KEY
                                                        : v1::KEY_KIND_UNSPECIFIED;
  if (kind == v1::KEY_KIND_UNSPECIFIED) return Only(v1::MALFORMED);
  const Tag tag = TagOf(Sha256(key));
  EpochGuard guard;
  {
    // The home slot's cache line is on its way while the alphabet is checked.
    uint64_t t0, t1;
    SplitTag(tag.data(), t0, t1);
    const Table* t = table_.load(std::memory_order_seq_cst);
    __builtin_prefetch(&t->slots[t->Home(t0)]);
    __builtin_prefetch(&t->Block(t1));
  }
  if (!AllBase62(key.substr(prefix.size()))) {
    return Only(v1::MALFORMED);
  }
  Found f;
  if (Find(tag, f)) {
    // A key whose tag is in the table is a key the authority made, checksum
    // included (another key would have to match 120 bits of SHA-256).
    return Verdict(f, kind, now);
  }
  // Not ours: the checksum tells a typo (MALFORMED) from a stranger (UNKNOWN).
  return Only(ParseKey(key) == kind ? v1::UNKNOWN : v1::MALFORMED);
}

Validation KeySet::Lookup(const Digest& digest, v1::KeyKind kind, absl::Time now) const {
  EpochGuard guard;
  Found f;
  if (!Find(TagOf(digest), f)) return Only(v1::UNKNOWN);
  return Verdict(f, kind, &now);
}

bool KeySet::Find(const Tag& tag, Found& out) const {
  uint64_t t0, t1;
  SplitTag(tag.data(), t0, t1);
  for (;;) {
    const uint64_t begin = seq_.load(std::memory_order_acquire);
    if (begin & 1) {  // a writer is mid-change, for microseconds unless it lost its core
      std::this_thread::yield();
      continue;
    }
    const Table* t = table_.load(std::memory_order_seq_cst);
    const Projects* projects = projects_.load(std::memory_order_seq_cst);
    const Expiries* expiries = expiries_.load(std::memory_order_seq_cst);
    bool found = false;
    size_t i = t->Home(t0);
    const size_t limit = t->MayContain(t0, t1) ? t->capacity : 0;
    for (size_t probes = 0; probes < limit; ++probes, i = t->Next(i)) {
      const Slot& s = t->slots[i];
      const uint64_t w0 = s.w[0].load(std::memory_order_relaxed);
      const uint64_t w1 = s.w[1].load(std::memory_order_relaxed);
      const uint64_t status = (w1 >> kMetaShift) & kStatusMask;
      if (status == kEmpty) break;
      if (status == kFull && w0 == t0 && (w1 & kTagHighMask) == t1) {
        out.w1 = w1;
        out.w2 = s.w[2].load(std::memory_order_relaxed);
        out.w3 = s.w[3].load(std::memory_order_relaxed);
        found = true;
        break;
      }
    }
    if (found) {
      out.project = projects->Get(out.w3 >> kProjectShift);
      out.disabled =
          out.project != nullptr && out.project->disabled.load(std::memory_order_relaxed) != 0;
      out.expire_micros = 0;
      if ((out.w1 >> kMetaShift) & kExpires) {
        // The map is immutable; a torn read may miss the tag and is retried.
        auto it = expiries->find(tag);
        out.expire_micros = it == expiries->end() ? -1 : it->second;
      }
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (seq_.load(std::memory_order_relaxed) != begin) continue;
    // The sequence check passed: what was read is one state the writer
    // published, and its project entry was written before that.
    return found && out.project != nullptr;
  }
}

Validation KeySet::Verdict(const Found& f, v1::KeyKind kind, const absl::Time* now) const {
  const uint64_t meta = f.w1 >> kMetaShift;
  const v1::KeyKind stored = (meta & kSecret) ? v1::SECRET_KEY : v1::API_KEY;
  if (stored != kind) return Only(v1::UNKNOWN);
  Validation v;
  v.verdict = v1::VALID;
  v.kind = stored;
  v.packed_key_id = DecodeKeyId(f.w2, f.w3 & kLowMask36);
  v.packed_project_id = f.project->id;
  if (meta & kRevoked) {
    v.verdict = v1::REVOKED;
  } else if (f.expire_micros != 0 &&
             f.expire_micros <= absl::ToUnixMicros(now != nullptr ? *now : absl::Now())) {
    v.verdict = v1::EXPIRED;
  } else if (f.disabled) {
    v.verdict = v1::PROJECT_DISABLED;
  }
  return v;
}

template <typename F>
void KeySet::Write(F change) {
  const uint64_t s = seq_.load(std::memory_order_relaxed);
  seq_.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  change();
  seq_.store(s + 2, std::memory_order_release);
}

void KeySet::Reserve(size_t more) {
  Table* old = table_.load(std::memory_order_relaxed);
  if (static_cast<double>(old->used + more) <= kMaxLoad * static_cast<double>(old->capacity)) {
    return;
  }
  const size_t live = size_.load(std::memory_order_relaxed) + more;
  auto fresh = std::make_unique<Table>(static_cast<size_t>(static_cast<double>(live) / kBuildLoad));
  for (size_t i = 0; i < old->capacity; ++i) {
    const Slot& s = old->slots[i];
    Words w;
    for (int k = 0; k < 4; ++k) w.w[k] = s.w[k].load(std::memory_order_relaxed);
    if (((w.w[1] >> kMetaShift) & kStatusMask) == kFull) fresh->Put(w);
  }
  Table* published = fresh.release();
  Write([&] { table_.store(published, std::memory_order_seq_cst); });
  WaitForReaders();
  delete old;
}

void KeySet::Replace(Builder& builder) {
  Replace(builder, [](absl::FunctionRef<void()> swap) { swap(); });
}

void KeySet::Replace(Builder& builder,
                     absl::FunctionRef<void(absl::FunctionRef<void()> swap)> around_swap) {
  const size_t n = builder.size_;
  auto table = std::make_unique<Table>(static_cast<size_t>(static_cast<double>(n) / kBuildLoad));
  // Slots are placed in arrival order (a later record for a tag wins), each
  // prefetched a few entries ahead: the cache misses of a million random
  // slots overlap instead of following one another.
  constexpr size_t kAhead = 16;
  auto entry = [&builder](size_t i) -> const Words& {
    return builder.slabs_[i / kSlabEntries]->entries[i % kSlabEntries];
  };
  size_t live = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) table->Prefetch(entry(i + kAhead));
    if (table->Put(entry(i))) ++live;
  }
  Projects* p = std::exchange(builder.projects_, std::make_unique<Projects>()).release();
  const Expiries* e = std::exchange(builder.expiries_, std::make_unique<Expiries>()).release();
  std::vector<std::unique_ptr<Builder::Slab>>().swap(builder.slabs_);
  builder.size_ = 0;

  MutexLock lock(&write_mu_);
  Table* old_table = table_.load(std::memory_order_relaxed);
  Projects* old_projects = projects_.load(std::memory_order_relaxed);
  const Expiries* old_expiries = expiries_.load(std::memory_order_relaxed);
  Table* t = table.release();
  // The analysis cannot see that write_mu_, held here, is held where the
  // caller calls this back.
  around_swap([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    Write([&] {
      table_.store(t, std::memory_order_seq_cst);
      projects_.store(p, std::memory_order_seq_cst);
      expiries_.store(e, std::memory_order_seq_cst);
      size_.store(live, std::memory_order_relaxed);
    });
  });
  WaitForReaders();
  delete old_table;
  delete old_projects;
  delete old_expiries;
}

absl::Status KeySet::Apply(const v1::KeyEvent& event) {
  // Everything is checked before anything changes: an event is one revision
  // and applies whole or not at all (the sync client then resyncs).
  std::vector<Record> upserts(event.upserts_size());
  for (int i = 0; i < event.upserts_size(); ++i) {
    if (absl::Status s = ToRecord(event.upserts(i), upserts[i]); !s.ok()) return s;
  }
  std::vector<Tag> removed(event.removed_digests_size());
  for (int i = 0; i < event.removed_digests_size(); ++i) {
    const std::string& raw = event.removed_digests(i);
    if (raw.size() != sizeof(Digest)) {
      return absl::InvalidArgumentError("removed digest is not 32 bytes");
    }
    std::memcpy(removed[i].data(), raw.data(), removed[i].size());
  }
  std::vector<std::pair<ProjectId, bool>> access(event.project_access_size());
  for (int i = 0; i < event.project_access_size(); ++i) {
    if (!PackId(event.project_access(i).project_id(), kProjectIdPrefix, access[i].first)) {
      return absl::InvalidArgumentError("malformed project id in event");
    }
    access[i].second = event.project_access(i).enabled();
  }

  MutexLock lock(&write_mu_);
  Reserve(upserts.size());
  Projects* projects = projects_.load(std::memory_order_relaxed);
  // Project indexes are allocated before the section: entries are written
  // before any slot can name them.
  std::vector<uint32_t> upsert_projects(upserts.size());
  for (size_t i = 0; i < upserts.size(); ++i) {
    if (absl::Status s = projects->Intern(upserts[i].project_id, upsert_projects[i]); !s.ok()) {
      return s;
    }
  }
  std::vector<uint32_t> access_projects(access.size());
  for (size_t i = 0; i < access.size(); ++i) {
    if (absl::Status s = projects->Intern(access[i].first, access_projects[i]); !s.ok()) return s;
  }

  // The expiry map is replaced whole when this event changes it.
  const Expiries* old_expiries = expiries_.load(std::memory_order_relaxed);
  std::unique_ptr<Expiries> expiries;
  auto change_expiry = [&](const Tag& tag, int64_t micros) {
    const auto it = old_expiries->find(tag);
    const int64_t before = it == old_expiries->end() ? 0 : it->second;
    if (before == micros && !expiries) return;
    if (!expiries) expiries = std::make_unique<Expiries>(*old_expiries);
    if (micros != 0) {
      (*expiries)[tag] = micros;
    } else {
      expiries->erase(tag);
    }
  };
  for (const Record& r : upserts) change_expiry(r.tag, r.expire_micros);
  for (const Tag& tag : removed) change_expiry(tag, 0);
  const Expiries* new_expiries = expiries.release();

  Table* t = table_.load(std::memory_order_relaxed);
  Write([&] {
    size_t size = size_.load(std::memory_order_relaxed);
    if (new_expiries != nullptr) expiries_.store(new_expiries, std::memory_order_seq_cst);
    for (size_t i = 0; i < upserts.size(); ++i) {
      if (t->Put(Encode(upserts[i], upsert_projects[i]))) ++size;
    }
    for (const Tag& tag : removed) {
      uint64_t t0, t1;
      SplitTag(tag.data(), t0, t1);
      bool found;
      Slot* s = t->Place(t0, t1, found);
      if (!found) continue;  // it is not an error if the digest was not there
      s->w[1].store(t1 | (kRemoved << kMetaShift), std::memory_order_relaxed);
      --size;
    }
    for (size_t i = 0; i < access.size(); ++i) {
      projects->Mutable(access_projects[i])
          ->disabled.store(access[i].second ? 0 : 1, std::memory_order_relaxed);
    }
    size_.store(size, std::memory_order_relaxed);
  });
  if (new_expiries != nullptr) {
    WaitForReaders();
    delete old_expiries;
  }
  return absl::OkStatus();
}

std::vector<KeySet::Record> KeySet::Records() const {
  MutexLock lock(&write_mu_);
  const Table* t = table_.load(std::memory_order_relaxed);
  const Projects* projects = projects_.load(std::memory_order_relaxed);
  const Expiries* expiries = expiries_.load(std::memory_order_relaxed);
  std::vector<Record> out;
  out.reserve(size_.load(std::memory_order_relaxed));
  for (size_t i = 0; i < t->capacity; ++i) {
    const Slot& s = t->slots[i];
    const uint64_t w1 = s.w[1].load(std::memory_order_relaxed);
    const uint64_t meta = w1 >> kMetaShift;
    if ((meta & kStatusMask) != kFull) continue;
    Record r;
    const uint64_t w0 = s.w[0].load(std::memory_order_relaxed);
    std::memcpy(r.tag.data(), &w0, 8);
    std::memcpy(r.tag.data() + 8, &w1, kTagBytes - 8);
    const uint64_t w3 = s.w[3].load(std::memory_order_relaxed);
    r.key_id = DecodeKeyId(s.w[2].load(std::memory_order_relaxed), w3 & kLowMask36);
    r.project_id = projects->Get(w3 >> kProjectShift)->id;
    r.kind = (meta & kSecret) ? v1::SECRET_KEY : v1::API_KEY;
    r.state = (meta & kRevoked) ? v1::KEY_STATE_REVOKED : v1::KEY_STATE_ACTIVE;
    if (meta & kExpires) r.expire_micros = expiries->at(r.tag);
    out.push_back(r);
  }
  return out;
}

std::vector<std::string> KeySet::DisabledProjects() const {
  MutexLock lock(&write_mu_);
  const Projects* projects = projects_.load(std::memory_order_relaxed);
  std::vector<std::string> out;
  for (uint32_t i = 0; i < projects->count; ++i) {
    const Projects::Entry* p = projects->Get(i);
    if (p->disabled.load(std::memory_order_relaxed))
      out.push_back(UnpackId(kProjectIdPrefix, p->id));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> KeySet::Dump() const {
  std::vector<std::string> lines;
  for (const Record& r : Records()) {
    const std::string_view tag(reinterpret_cast<const char*>(r.tag.data()), r.tag.size());
    lines.push_back(StrCat(HexPrefix(tag, 2 * kTagBytes), " ", UnpackId(kKeyIdPrefix, r.key_id),
                           " ", static_cast<int>(r.kind), " ", static_cast<int>(r.state), " ",
                           r.expire_micros, " ", UnpackId(kProjectIdPrefix, r.project_id)));
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

size_t KeySet::MemoryBytes() const {
  MutexLock lock(&write_mu_);
  const Expiries* expiries = expiries_.load(std::memory_order_relaxed);
  const Table* t = table_.load(std::memory_order_relaxed);
  return t->capacity * sizeof(Slot) + t->filter_blocks * sizeof(FilterBlock) +
         projects_.load(std::memory_order_relaxed)->MemoryBytes() +
         expiries->capacity() * (sizeof(Expiries::value_type) + 1);
}

}  // namespace latchkey
