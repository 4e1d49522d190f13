// Any bytes as a KeyAdmin request through the lifecycle core, on a real
// RocksDB store: the first byte picks the method, the rest is the request.
// No crash, and every refusal is one of the codes the API promises.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <memory>

#include "authority/core/key_authority.h"
#include "authority/store/rocksdb/rocksdb_store.h"

namespace {

using latchkey::Caller;
using latchkey::KeyAuthority;
namespace v1 = latchkey::v1;

struct World {
  std::string dir = (std::filesystem::temp_directory_path() / "latchkey-fuzz-XXXXXX").string();
  std::unique_ptr<latchkey::KeyStore> store;
  std::unique_ptr<KeyAuthority> core;
  Caller admin{"prn_fuzz", "fuzz", v1::ROLE_ADMIN};
  std::string project_id, api_key_id, secret_key_id;

  World() {
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
  ~World() {
    core.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }
};

void Check(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:  // a principal name already taken
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kPermissionDenied:
      return;
    default:
      // INTERNAL, DATA_LOSS, ... from a request is a bug.
      std::fprintf(stderr, "unexpected status: %s\n", s.ToString().c_str());
      std::abort();
  }
}

template <typename Req, typename Resp>
void Call(World& w, const uint8_t* data, size_t size,
          absl::StatusOr<Resp> (KeyAuthority::*method)(const Caller&, const Req&)) {
  Req req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return;
  Check(((*w.core).*method)(w.admin, req).status());
}

// Requests aimed at the ids that exist, where fuzzed bytes rarely reach.
void AtKnownIds(World& w, const uint8_t* data, size_t size) {
  v1::RevokeApiKeyRequest r;
  r.set_key_id(w.api_key_id);
  Check(w.core->RevokeApiKey(w.admin, r).status());
  v1::GenerateApiKeyRequest g;
  g.set_project_id(w.project_id);
  // Raw bytes, not parsed: names that are not UTF-8 reach the core too.
  g.set_name(std::string(reinterpret_cast<const char*>(data), std::min<size_t>(size, 120)));
  Check(w.core->GenerateApiKey(w.admin, g).status());
}

template <auto Method>
void Parsed(World& w, const uint8_t* data, size_t size) {
  Call(w, data, size, Method);
}

// The first input byte picks one (modulo the count); tests/fuzz/make_seeds.py
// writes its seeds by these indexes.
using Target = void (*)(World&, const uint8_t*, size_t);
constexpr Target kTargets[] = {
    &Parsed<&KeyAuthority::CreateProject>,
    &Parsed<&KeyAuthority::GetProject>,
    &Parsed<&KeyAuthority::ListProjects>,
    &Parsed<&KeyAuthority::SetApiAccess>,
    &Parsed<&KeyAuthority::GenerateApiKey>,
    &Parsed<&KeyAuthority::GetApiKeyValue>,
    &Parsed<&KeyAuthority::RevokeApiKey>,
    &Parsed<&KeyAuthority::RotateApiKey>,
    &Parsed<&KeyAuthority::GenerateSecretKey>,
    &Parsed<&KeyAuthority::DeleteSecretKey>,
    &Parsed<&KeyAuthority::GetKey>,
    &Parsed<&KeyAuthority::ListKeys>,
    &Parsed<&KeyAuthority::ListAuditEvents>,
    &Parsed<&KeyAuthority::CreatePrincipal>,
    &Parsed<&KeyAuthority::ListPrincipals>,
    &Parsed<&KeyAuthority::DeletePrincipal>,
    &AtKnownIds,
    &Parsed<&KeyAuthority::FindKey>,
};

}  // namespace

// RocksDB flushes and compacts on its own threads. An object one of them
// allocated and frees a moment later is no leak, yet LeakSanitizer reports it
// when it looks in between (CI saw a 24-byte CompactionArg). It looks at exit,
// so the world is a static that closes the store before then (closing waits for
// the background work), and libFuzzer looks after inputs, while those threads
// run on, so their allocations are left out. Everything this thread allocates,
// latchkey's code included, is still checked.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:rocksdb::ThreadPoolImpl::Impl::BGThread\n";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World w;
  if (size == 0) return 0;
  kTargets[data[0] % std::size(kTargets)](w, data + 1, size - 1);
  return 0;
}
