// OpenStore on its own: the one place that knows which store --store names.
#include "authority/store_factory.h"

#include <catch2/catch.hpp>
#include <filesystem>

#include "common/files.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

TEST_CASE("a store name other than rocksdb and etcd is refused and opens nothing") {
  testing::TempDir dir;
  AuthorityOptions options;
  options.store = "redis";
  options.data_dir = dir / "data";
  absl::StatusOr<OpenedStore> opened = OpenStore(options);
  REQUIRE(absl::IsInvalidArgument(opened.status()));
  CHECK(std::string(opened.status().message()).find("redis") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "data"));
}

TEST_CASE("the embedded store is not shared, and makes its first ADMIN's token once") {
  testing::TempDir dir;
  AuthorityOptions options;
  options.data_dir = dir / "data";
  std::string first_token;
  for (int start = 0; start < 2; start++) {
    absl::StatusOr<OpenedStore> opened = OpenStore(options);
    REQUIRE(opened.ok());
    CHECK_FALSE(opened->shared);
    CHECK(opened->admin_token_path == dir / "data/admin.token");
    absl::StatusOr<std::unique_ptr<KeyAuthority>> core =
        KeyAuthority::Create(opened->store.get(), std::move(opened->sealer), {});
    REQUIRE(core.ok());
    REQUIRE(opened->bootstrap(**core).ok());
    absl::StatusOr<std::string> token = ReadPrivateFile(opened->admin_token_path);
    REQUIRE(token.ok());
    CHECK_FALSE(token->empty());
    if (start == 0) first_token = *token;
    CHECK(*token == first_token);  // the second start finds the ADMIN and keeps it
  }
}

TEST_CASE("the etcd store without --master-key-file is refused before any etcd call") {
  AuthorityOptions options;
  options.store = "etcd";
  options.etcd.endpoints = {"127.0.0.1:1"};  // nothing listens: it must not get that far
  absl::StatusOr<OpenedStore> opened = OpenStore(options);
  REQUIRE(absl::IsInvalidArgument(opened.status()));
  CHECK(std::string(opened.status().message()).find("--master-key-file") != std::string::npos);
}

TEST_CASE("the etcd store without --etcd-endpoints is refused, naming the flag") {
  AuthorityOptions options;
  options.store = "etcd";
  options.master_key_file = "/nonexistent/master.key";  // refused before it is read
  absl::StatusOr<OpenedStore> opened = OpenStore(options);
  REQUIRE(absl::IsInvalidArgument(opened.status()));
  CHECK(std::string(opened.status().message()).find("--etcd-endpoints") != std::string::npos);
}

TEST_CASE("the log names where each store lives") {
  AuthorityOptions options;
  options.data_dir = "/var/lib/latchkey";
  CHECK(StoreDescription(options) == "data dir /var/lib/latchkey");
  options.store = "etcd";
  options.etcd.endpoints = {"10.0.0.1:2379", "10.0.0.2:2379"};
  options.etcd.prefix = "/lk/";
  CHECK(StoreDescription(options) == "etcd 10.0.0.1:2379,10.0.0.2:2379 prefix /lk/");
}

}  // namespace
}  // namespace latchkey
