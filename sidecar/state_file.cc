#include "sidecar/state_file.h"

#include <cstring>

#include "common/crypto.h"
#include "common/files.h"
#include "common/strings.h"
#include "common/time_util.h"
#include "sidecar/internal/state.pb.h"

namespace latchkey {
namespace {

// LKSTATE1 files (whole digests) fail the magic check: the sidecar starts
// empty and syncs, as after any unusable file.
constexpr std::string_view kMagic = "LKSTATE2";
constexpr size_t kDigestBytes = 32;

// One record's layout (sidecar/internal/state.proto).
constexpr size_t kTagAt = 0;
constexpr size_t kKeyIdAt = kTagAt + KeySet::kTagBytes;
constexpr size_t kProjectIdAt = kKeyIdAt + sizeof(KeySet::KeyId);
constexpr size_t kKindAt = kProjectIdAt + sizeof(KeySet::ProjectId);
constexpr size_t kStateAt = kKindAt + 1;
constexpr size_t kExpireAt = kStateAt + 1;
constexpr size_t kRecordBytes = kExpireAt + 8;
static_assert(kRecordBytes == 53);

void AppendRecord(const KeySet::Record& r, std::string& out) {
  char buf[kRecordBytes];
  std::memcpy(buf + kTagAt, r.tag.data(), r.tag.size());
  std::memcpy(buf + kKeyIdAt, r.key_id.data(), r.key_id.size());
  std::memcpy(buf + kProjectIdAt, r.project_id.data(), r.project_id.size());
  buf[kKindAt] = static_cast<char>(r.kind);
  buf[kStateAt] = static_cast<char>(r.state);
  const uint64_t expire = static_cast<uint64_t>(r.expire_micros);
  for (int i = 0; i < 8; ++i) buf[kExpireAt + i] = static_cast<char>(expire >> (8 * i));
  out.append(buf, sizeof(buf));
}

KeySet::Record ReadRecord(const char* in) {
  KeySet::Record r;
  std::memcpy(r.tag.data(), in + kTagAt, r.tag.size());
  std::memcpy(r.key_id.data(), in + kKeyIdAt, r.key_id.size());
  std::memcpy(r.project_id.data(), in + kProjectIdAt, r.project_id.size());
  r.kind = static_cast<uint8_t>(in[kKindAt]);
  r.state = static_cast<uint8_t>(in[kStateAt]);
  uint64_t expire = 0;
  for (int i = 0; i < 8; ++i)
    expire |= uint64_t{static_cast<uint8_t>(in[kExpireAt + i])} << (8 * i);
  r.expire_micros = static_cast<int64_t>(expire);
  return r;
}

}  // namespace

std::string EncodeState(const KeySet& keys, const SavedState& at) {
  internal::SidecarState state;
  state.set_store_id(at.store_id);
  state.set_revision(at.revision);
  *state.mutable_confirmed_time() = ToProto(at.confirmed);
  state.set_session(at.session);
  const std::vector<KeySet::Record> records = keys.Records();
  std::string* packed = state.mutable_records();
  packed->reserve(records.size() * kRecordBytes);
  for (const KeySet::Record& r : records) AppendRecord(r, *packed);
  for (std::string& p : keys.DisabledProjects()) state.add_disabled_project_ids(std::move(p));
  const std::string body = state.SerializeAsString();
  std::string file(kMagic);
  file += Sha256Bytes(body);
  file += body;
  return file;
}

absl::Status SaveState(const std::string& path, const KeySet& keys, const SavedState& at) {
  return WritePrivateFile(path, EncodeState(keys, at));
}

absl::StatusOr<SavedState> LoadState(const std::string& path, KeySet::Builder& keys) {
  absl::StatusOr<std::string> file = ReadPrivateFile(path);
  if (!file.ok()) return file.status();
  if (file->empty()) return absl::NotFoundError(StrCat("no state file at ", path));
  const std::string_view bytes(*file);
  if (bytes.size() < kMagic.size() + kDigestBytes || bytes.substr(0, kMagic.size()) != kMagic) {
    return absl::DataLossError(StrCat(path, " is not a latchkey sidecar state file"));
  }
  const std::string_view sum = bytes.substr(kMagic.size(), kDigestBytes);
  const std::string_view body = bytes.substr(kMagic.size() + kDigestBytes);
  if (Sha256Bytes(body) != sum) {
    return absl::DataLossError(StrCat(path, " fails its checksum (a torn or altered file)"));
  }
  internal::SidecarState state;
  if (!state.ParseFromArray(body.data(), static_cast<int>(body.size())) ||
      state.store_id().empty()) {
    return absl::DataLossError(StrCat(path, " holds no usable state"));
  }
  const std::string& packed = state.records();
  if (packed.size() % kRecordBytes != 0) {
    return absl::DataLossError(StrCat(path, " holds a partial key record"));
  }
  for (size_t at = 0; at < packed.size(); at += kRecordBytes) {
    if (absl::Status s = keys.Add(ReadRecord(packed.data() + at)); !s.ok()) return s;
  }
  for (const std::string& p : state.disabled_project_ids()) {
    if (absl::Status s = keys.AddDisabledProject(p); !s.ok()) return s;
  }
  return SavedState{.store_id = state.store_id(),
                    .revision = state.revision(),
                    .confirmed = FromProto(state.confirmed_time()),
                    .session = state.session()};
}

}  // namespace latchkey
