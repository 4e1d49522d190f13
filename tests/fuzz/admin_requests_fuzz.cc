// Any bytes as a KeyAdmin request through the lifecycle core, on a real
// RocksDB store: the first byte picks the method, the rest is the request.
// No crash, and every refusal is one of the codes the API promises.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "authority/key_authority.h"

namespace {

using latchkey::Caller;
using latchkey::KeyAuthority;
namespace v1 = latchkey::v1;

struct World {
  std::unique_ptr<latchkey::KeyStore> store;
  std::unique_ptr<KeyAuthority> core;
  Caller admin{"prn_fuzz", "fuzz", v1::ROLE_ADMIN};
  std::string project_id, api_key_id, secret_key_id;

  World() {
    std::string dir = (std::filesystem::temp_directory_path() / "latchkey-fuzz-XXXXXX").string();
    if (mkdtemp(dir.data()) == nullptr) std::abort();
    latchkey::RocksDbStoreOptions o;
    o.path = dir + "/db";
    o.sync = false;  // crash safety is not what this target explores
    store = *latchkey::OpenRocksDbStore(o);
    core = *KeyAuthority::Create(store.get(), *latchkey::Sealer::LoadOrCreate(dir + "/master.key"),
                                 {});
    v1::CreateProjectRequest cp;
    cp.set_name("fuzz");
    auto p = *core->CreateProject(admin, cp);
    project_id = p.project().project_id();
    api_key_id = p.legacy_key().key_id();
  }
};

void Check(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kPermissionDenied:
      return;
    default:
      std::abort();  // INTERNAL, DATA_LOSS, ... from a request is a bug
  }
}

template <typename Req, typename Method>
void Call(World& w, const uint8_t* data, size_t size, Method method) {
  Req req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return;
  Check(((*w.core).*method)(w.admin, req).status());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* w = new World;
  if (size == 0) return 0;
  const uint8_t which = data[0] % 17;
  ++data;
  --size;
  switch (which) {
    case 0:
      Call<v1::CreateProjectRequest>(*w, data, size, &KeyAuthority::CreateProject);
      break;
    case 1:
      Call<v1::GetProjectRequest>(*w, data, size, &KeyAuthority::GetProject);
      break;
    case 2:
      Call<v1::ListProjectsRequest>(*w, data, size, &KeyAuthority::ListProjects);
      break;
    case 3:
      Call<v1::SetApiAccessRequest>(*w, data, size, &KeyAuthority::SetApiAccess);
      break;
    case 4:
      Call<v1::GenerateApiKeyRequest>(*w, data, size, &KeyAuthority::GenerateApiKey);
      break;
    case 5:
      Call<v1::GetApiKeyValueRequest>(*w, data, size, &KeyAuthority::GetApiKeyValue);
      break;
    case 6:
      Call<v1::RevokeApiKeyRequest>(*w, data, size, &KeyAuthority::RevokeApiKey);
      break;
    case 7:
      Call<v1::RotateApiKeyRequest>(*w, data, size, &KeyAuthority::RotateApiKey);
      break;
    case 8:
      Call<v1::GenerateSecretKeyRequest>(*w, data, size, &KeyAuthority::GenerateSecretKey);
      break;
    case 9:
      Call<v1::DeleteSecretKeyRequest>(*w, data, size, &KeyAuthority::DeleteSecretKey);
      break;
    case 10:
      Call<v1::GetKeyRequest>(*w, data, size, &KeyAuthority::GetKey);
      break;
    case 11:
      Call<v1::ListKeysRequest>(*w, data, size, &KeyAuthority::ListKeys);
      break;
    case 12:
      Call<v1::ListAuditEventsRequest>(*w, data, size, &KeyAuthority::ListAuditEvents);
      break;
    case 13:
      Call<v1::CreatePrincipalRequest>(*w, data, size, &KeyAuthority::CreatePrincipal);
      break;
    case 14:
      Call<v1::ListPrincipalsRequest>(*w, data, size, &KeyAuthority::ListPrincipals);
      break;
    case 15:
      Call<v1::DeletePrincipalRequest>(*w, data, size, &KeyAuthority::DeletePrincipal);
      break;
    default: {
      // Requests aimed at the ids that exist, where fuzzed bytes rarely reach.
      v1::RevokeApiKeyRequest r;
      r.set_key_id(w->api_key_id);
      Check(w->core->RevokeApiKey(w->admin, r).status());
      v1::GenerateApiKeyRequest g;
      g.set_project_id(w->project_id);
      g.set_name(std::string(reinterpret_cast<const char*>(data), std::min<size_t>(size, 120)));
      Check(w->core->GenerateApiKey(w->admin, g).status());
    }
  }
  return 0;
}
