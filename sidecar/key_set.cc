#include "sidecar/key_set.h"

#include <algorithm>
#include <cstring>

#include "common/key_format.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

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

absl::Status ToEntry(const v1::KeyEntry& in, Digest& digest, KeySet::Entry& out) {
  if (in.digest().size() != digest.size()) {
    return absl::InvalidArgumentError("key entry digest is not 32 bytes");
  }
  std::memcpy(digest.data(), in.digest().data(), digest.size());
  if (!PackId(in.key_id(), kKeyIdPrefix, out.key_id) ||
      !PackId(in.project_id(), kProjectIdPrefix, out.project_id)) {
    return absl::InvalidArgumentError("key entry has a malformed key or project id");
  }
  if ((in.kind() != v1::API_KEY && in.kind() != v1::SECRET_KEY) ||
      (in.state() != v1::KEY_STATE_ACTIVE && in.state() != v1::KEY_STATE_REVOKED)) {
    return absl::InvalidArgumentError("key entry has an unknown kind or state");
  }
  out.kind = static_cast<uint8_t>(in.kind());
  out.state = static_cast<uint8_t>(in.state());
  out.expire_micros = in.has_expire_time() ? absl::ToUnixMicros(FromProto(in.expire_time())) : 0;
  if (in.has_expire_time() && out.expire_micros == 0) out.expire_micros = 1;  // the epoch itself
  return absl::OkStatus();
}

Validation Only(v1::Verdict verdict) {
  Validation v;
  v.verdict = verdict;
  return v;
}

}  // namespace

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

size_t KeySet::DigestHash::operator()(const Digest& d) const {
  uint64_t h;
  std::memcpy(&h, d.data(), sizeof(h));
  return static_cast<size_t>(h);
}

KeySet::Builder::Builder() = default;

absl::Status KeySet::Builder::Add(const v1::KeyEntry& entry) {
  Digest digest;
  Entry e;
  if (absl::Status s = ToEntry(entry, digest, e); !s.ok()) return s;
  shards_[ShardOf(digest)].insert_or_assign(digest, e);
  return absl::OkStatus();
}

absl::Status KeySet::Builder::AddDisabledProject(std::string_view project_id) {
  ProjectId p;
  if (!PackId(project_id, kProjectIdPrefix, p)) {
    return absl::InvalidArgumentError("malformed disabled project id");
  }
  disabled_.insert(p);
  return absl::OkStatus();
}

size_t KeySet::Builder::size() const {
  size_t n = 0;
  for (const Map& m : shards_) n += m.size();
  return n;
}

Validation KeySet::Validate(std::string_view key, absl::Time now) const {
  const v1::KeyKind kind = ParseKey(key);
  if (kind == v1::KEY_KIND_UNSPECIFIED) return Only(v1::MALFORMED);
  return Lookup(Sha256(key), kind, now);
}

Validation KeySet::Lookup(const Digest& digest, v1::KeyKind kind, absl::Time now) const {
  Entry e;
  {
    const Shard& shard = shards_[ShardOf(digest)];
    ReaderMutexLock lock(&shard.mu);
    auto it = shard.map.find(digest);
    if (it == shard.map.end()) return Only(v1::UNKNOWN);
    e = it->second;
  }
  if (e.kind != kind) return Only(v1::UNKNOWN);
  Validation v;
  v.verdict = v1::VALID;
  v.kind = static_cast<v1::KeyKind>(e.kind);
  v.packed_key_id = e.key_id;
  v.packed_project_id = e.project_id;
  if (e.state == v1::KEY_STATE_REVOKED) {
    v.verdict = v1::REVOKED;
  } else if (e.expire_micros != 0 && e.expire_micros <= absl::ToUnixMicros(now)) {
    v.verdict = v1::EXPIRED;
  } else if (ProjectDisabled(e.project_id)) {
    v.verdict = v1::PROJECT_DISABLED;
  }
  return v;
}

bool KeySet::ProjectDisabled(const ProjectId& p) const {
  if (disabled_count_.load(std::memory_order_acquire) == 0) return false;
  ReaderMutexLock lock(&disabled_mu_);
  return disabled_.contains(p);
}

void KeySet::Replace(Builder& builder) {
  // All shard locks, in index order, so no reader sees half of each set.
  for (Shard& s : shards_) s.mu.Lock();
  disabled_mu_.Lock();
  for (size_t i = 0; i < kShards; ++i) shards_[i].map.swap(builder.shards_[i]);
  disabled_.swap(builder.disabled_);
  disabled_count_.store(disabled_.size(), std::memory_order_release);
  disabled_mu_.Unlock();
  for (Shard& s : shards_) s.mu.Unlock();
  // The old maps are freed here, outside every lock.
  for (Map& m : builder.shards_) Map().swap(m);
  absl::flat_hash_set<ProjectId>().swap(builder.disabled_);
}

absl::Status KeySet::Apply(const v1::KeyEvent& event) {
  // Everything is checked before anything changes: an event is one revision
  // and applies whole or not at all (the sync client then resyncs).
  std::vector<std::pair<Digest, Entry>> upserts(event.upserts_size());
  for (int i = 0; i < event.upserts_size(); ++i) {
    if (absl::Status s = ToEntry(event.upserts(i), upserts[i].first, upserts[i].second); !s.ok()) {
      return s;
    }
  }
  std::vector<Digest> removed(event.removed_digests_size());
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

  for (const auto& [digest, e] : upserts) {
    Shard& shard = shards_[ShardOf(digest)];
    MutexLock lock(&shard.mu);
    shard.map.insert_or_assign(digest, e);
  }
  for (const Digest& digest : removed) {
    Shard& shard = shards_[ShardOf(digest)];
    MutexLock lock(&shard.mu);
    shard.map.erase(digest);
  }
  if (!access.empty()) {
    MutexLock lock(&disabled_mu_);
    for (const auto& [p, enabled] : access) {
      if (enabled) {
        disabled_.erase(p);
      } else {
        disabled_.insert(p);
      }
    }
    disabled_count_.store(disabled_.size(), std::memory_order_release);
  }
  return absl::OkStatus();
}

size_t KeySet::size() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    ReaderMutexLock lock(&s.mu);
    n += s.map.size();
  }
  return n;
}

std::vector<std::string> KeySet::Dump() const {
  std::vector<std::string> lines;
  for (const Shard& s : shards_) {
    ReaderMutexLock lock(&s.mu);
    for (const auto& [digest, e] : s.map) {
      lines.push_back(StrCat(HexPrefix(AsBytes(digest), 32), " ", UnpackId(kKeyIdPrefix, e.key_id),
                             " ", static_cast<int>(e.kind), " ", static_cast<int>(e.state), " ",
                             e.expire_micros, " ", UnpackId(kProjectIdPrefix, e.project_id)));
    }
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

void KeySet::Export(v1::SnapshotChunk* out) const {
  for (const Shard& s : shards_) {
    ReaderMutexLock lock(&s.mu);
    for (const auto& [digest, e] : s.map) {
      v1::KeyEntry* k = out->add_entries();
      k->set_digest(AsBytes(digest).data(), digest.size());
      k->set_key_id(UnpackId(kKeyIdPrefix, e.key_id));
      k->set_project_id(UnpackId(kProjectIdPrefix, e.project_id));
      k->set_kind(static_cast<v1::KeyKind>(e.kind));
      k->set_state(static_cast<v1::KeyState>(e.state));
      if (e.expire_micros != 0) {
        *k->mutable_expire_time() = ToProto(absl::FromUnixMicros(e.expire_micros));
      }
    }
  }
  ReaderMutexLock lock(&disabled_mu_);
  for (const ProjectId& p : disabled_) {
    out->add_disabled_project_ids(UnpackId(kProjectIdPrefix, p));
  }
}

std::vector<std::string> KeySet::DisabledProjects() const {
  std::vector<std::string> out;
  ReaderMutexLock lock(&disabled_mu_);
  for (const ProjectId& p : disabled_) out.push_back(UnpackId(kProjectIdPrefix, p));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace latchkey
