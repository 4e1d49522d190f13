#include "sidecar/state_file.h"

#include "common/crypto.h"
#include "common/files.h"
#include "common/strings.h"
#include "common/time_util.h"
#include "sidecar/internal/state.pb.h"

namespace latchkey {
namespace {

constexpr std::string_view kMagic = "LKSTATE1";
constexpr size_t kDigestBytes = 32;

}  // namespace

std::string EncodeState(const KeySet& keys, const SavedState& at) {
  internal::SidecarState state;
  state.set_store_id(at.store_id);
  state.set_revision(at.revision);
  *state.mutable_confirmed_time() = ToProto(at.confirmed);
  state.set_session(at.session);
  keys.Export(state.mutable_keys());
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
  for (const v1::KeyEntry& e : state.keys().entries()) {
    if (absl::Status s = keys.Add(e); !s.ok()) return s;
  }
  for (const std::string& p : state.keys().disabled_project_ids()) {
    if (absl::Status s = keys.AddDisabledProject(p); !s.ok()) return s;
  }
  return SavedState{.store_id = state.store_id(),
                    .revision = state.revision(),
                    .confirmed = FromProto(state.confirmed_time()),
                    .session = state.session()};
}

}  // namespace latchkey
