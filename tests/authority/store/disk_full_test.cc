// The authority's data directory on a small tmpfs that the test fills up:
// mutations fail with a clear status, reads, validation and watch streams go
// on, nothing acknowledged is lost, and writes work again once space is
// freed, without a restart.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "authority/server.h"
#include "sidecar/server.h"
#include "tests/testing/cluster.h"

namespace latchkey {
namespace {

// Mounts a tmpfs of `bytes` at `dir` (created). As root it mounts directly;
// otherwise this process first enters its own user and mount namespace
// (possible only while it is single-threaded, as at the start of a test
// process). Returns an empty string, or why it could not.
std::string MountTmpfs(const std::string& dir, size_t bytes) {
  std::filesystem::create_directories(dir);
  const std::string options = "size=" + std::to_string(bytes) + ",mode=0700";
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) == 0) return "";
  const uid_t uid = getuid();
  const gid_t gid = getgid();
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return std::string("unshare: ") + strerror(errno);
  std::ofstream("/proc/self/setgroups") << "deny";
  std::ofstream("/proc/self/uid_map") << "0 " << uid << " 1";
  std::ofstream("/proc/self/gid_map") << "0 " << gid << " 1";
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) != 0) {
    return std::string("mount: ") + strerror(errno);
  }
  return "";
}

// Writes zeros to `path` until the filesystem refuses more. Returns the bytes
// written.
size_t FillUp(const std::string& path) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(fd >= 0);
  std::vector<char> block(64 << 10);
  size_t written = 0;
  for (;;) {
    const ssize_t n = write(fd, block.data(), block.size());
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  // Then the last few bytes, so nothing is left.
  while (write(fd, block.data(), 1) == 1) ++written;
  close(fd);
  return written;
}

// RocksDB resumes writes by itself once the free space exceeds its write
// buffer (64 MiB), checking every 5 s: the filesystem must be larger.
constexpr size_t kTmpfsBytes = 128 << 20;

grpc::Status Generate(testing::Admin& admin, const std::string& project, v1::Key* key) {
  v1::GenerateApiKeyRequest req;
  req.set_project_id(project);
  req.set_name("while full");
  v1::GenerateApiKeyResponse resp;
  grpc::Status s = admin.Call(&v1::KeyAdmin::Stub::GenerateApiKey, req, &resp);
  if (s.ok()) *key = resp.key();
  return s;
}

TEST_CASE("a full disk fails mutations clearly, keeps reads and sidecars going, and recovers",
          "[disk]") {
  testing::TempDir dir;
  const std::string data = dir / "data";
  const std::string why = MountTmpfs(data, kTmpfsBytes);
  INFO("could not mount a tmpfs: " << why);
  REQUIRE(why.empty());

  AuthorityOptions options;
  const int port = testing::PickFreePort();
  options.listen.addresses = {"127.0.0.1:" + std::to_string(port)};
  options.data_dir = data + "/authority";
  options.progress_interval = absl::Milliseconds(100);
  options.metrics_listen = "";
  auto authority = AuthorityServer::Start(options);
  REQUIRE(authority.ok());
  auto admin = std::make_unique<testing::Admin>(
      (*authority)->address(), testing::TokenFrom((*authority)->admin_token_path()));
  const v1::CreateProjectResponse project = admin->CreateProject("shop");
  const std::string project_id = project.project().project_id();
  SidecarOptions sc;
  sc.listen.addresses = {"127.0.0.1:0"};
  sc.authority = (*authority)->address();
  sc.token = admin->CreatePrincipal("pods", v1::ROLE_SIDECAR);
  sc.sidecar_id = "pod-0";
  auto sidecar = SidecarServer::Start(sc);
  REQUIRE(sidecar.ok());
  std::vector<std::string> acknowledged;  // key ids
  const v1::GenerateApiKeyResponse before = admin->GenerateApiKey(project_id);
  acknowledged.push_back(before.key().key_id());

  const size_t filler = FillUp(data + "/filler");
  std::printf("filled the %zu MiB tmpfs with a %zu KiB file\n", kTmpfsBytes >> 20, filler >> 10);

  // Mutations fail once RocksDB cannot write; every one acknowledged counts.
  grpc::Status refused;
  int attempts = 0;
  for (; attempts < 20000; ++attempts) {
    v1::Key key;
    refused = Generate(*admin, project_id, &key);
    if (!refused.ok()) break;
    acknowledged.push_back(key.key_id());
    if (acknowledged.size() >= 45) {  // stay under the 50 active keys
      v1::RevokeApiKeyRequest req;
      req.set_key_id(acknowledged[acknowledged.size() - 40]);
      v1::Key revoked;
      refused = admin->Call(&v1::KeyAdmin::Stub::RevokeApiKey, req, &revoked);
      if (!refused.ok()) break;
    }
  }
  INFO(refused.error_message());
  REQUIRE_FALSE(refused.ok());
  std::printf("after %d mutations on a full disk: %d %s\n", attempts,
              static_cast<int>(refused.error_code()), refused.error_message().c_str());
  CHECK(refused.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(refused.error_message().find("out of space") != std::string::npos);

  // Reads, validation and the watch stream go on.
  v1::GetKeyRequest get;
  get.set_key_id(before.key().key_id());
  v1::Key read;
  CHECK(admin->Call(&v1::KeyAdmin::Stub::GetKey, get, &read).ok());
  CHECK(testing::Verdict((*sidecar)->address(), before.api_key()) == v1::VALID);
  const absl::Time confirmed = (*sidecar)->sync_state().last_confirmed;
  CHECK(testing::Eventually([&] { return (*sidecar)->sync_state().last_confirmed > confirmed; }));
  CHECK((*sidecar)->sync_state().reconnects == 0);

  // Space comes back: writes work again without a restart.
  std::filesystem::remove(data + "/filler");
  v1::Key after;
  CHECK(testing::Eventually([&] { return Generate(*admin, project_id, &after).ok(); },
                            std::chrono::seconds(30)));
  acknowledged.push_back(after.key_id());
  CHECK(testing::Verdict((*sidecar)->address(), admin->GenerateApiKey(project_id, "x").api_key()) !=
        v1::VERDICT_UNSPECIFIED);

  // Nothing acknowledged was lost, across a restart too.
  (*sidecar).reset();
  admin.reset();
  (*authority).reset();
  authority = AuthorityServer::Start(options);
  REQUIRE(authority.ok());
  admin = std::make_unique<testing::Admin>((*authority)->address(),
                                           testing::TokenFrom((*authority)->admin_token_path()));
  for (const std::string& id : acknowledged) {
    get.set_key_id(id);
    INFO(id);
    CHECK(admin->Call(&v1::KeyAdmin::Stub::GetKey, get, &read).ok());
  }
  const std::vector<uint64_t> revisions = testing::AllAuditRevisions(*admin);
  for (size_t i = 0; i < revisions.size(); ++i) REQUIRE(revisions[i] == i + 1);
  (*authority).reset();
  umount2(data.c_str(), MNT_DETACH);
}

}  // namespace
}  // namespace latchkey
