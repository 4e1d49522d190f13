#include "authority/store/etcd/internal/layout.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "common/strings.h"

namespace latchkey {

std::string Decimal(uint64_t r) {
  std::string s = std::to_string(r);
  return std::string(20 - std::min<size_t>(20, s.size()), '0') + s;
}

std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    unsigned char last = static_cast<unsigned char>(prefix.back());
    if (last < 0xff) {
      prefix.back() = static_cast<char>(last + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

namespace {
constexpr std::string_view kHeadVersion = " v2";
}  // namespace

std::string HeadValue(uint64_t revision) { return StrCat(revision, kHeadVersion); }

std::optional<uint64_t> ParseHead(std::string_view value) {
  if (!value.ends_with(kHeadVersion)) return std::nullopt;
  value.remove_suffix(kHeadVersion.size());
  return ParseHeadBeforeV2(value);
}

std::optional<uint64_t> ParseHeadBeforeV2(std::string_view value) {
  uint64_t revision = 0;
  if (!absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &revision)) {
    return std::nullopt;
  }
  return revision;
}

std::string EtcdLayout::Id() const { return StrCat(prefix_, "meta/id"); }
std::string EtcdLayout::Head() const { return StrCat(prefix_, "meta/head"); }
std::string EtcdLayout::Meta() const { return StrCat(prefix_, "meta/"); }

std::string EtcdLayout::Rows() const { return StrCat(prefix_, "t/"); }
std::string EtcdLayout::Row(Table table, std::string_view key) const {
  return StrCat(prefix_, "t/", TableName(table), "/", key);
}
std::string EtcdLayout::Usage(std::string_view row_key) const {
  return StrCat(prefix_, "t/usage/", row_key);
}

std::string EtcdLayout::Log() const { return StrCat(prefix_, "log/"); }
std::string EtcdLayout::Log(uint64_t revision) const {
  return StrCat(prefix_, "log/", Decimal(revision));
}
std::string EtcdLayout::Audit(std::string_view project) const {
  return StrCat(prefix_, "audit/", project, "/");
}
std::string EtcdLayout::Audit(std::string_view project, uint64_t revision) const {
  return StrCat(prefix_, "audit/", project, "/", Decimal(revision));
}
std::string EtcdLayout::AuditLog() const { return StrCat(prefix_, "auditlog/"); }
std::string EtcdLayout::AuditLog(uint64_t revision) const {
  return StrCat(prefix_, "auditlog/", Decimal(revision));
}

std::string EtcdLayout::Progress(std::string_view key) const {
  return StrCat(prefix_, "advisory/progress/", key);
}
std::string EtcdLayout::Duty(std::string_view duty) const {
  return StrCat(prefix_, "duties/", duty);
}
std::string EtcdLayout::Replicas() const { return StrCat(prefix_, "replicas/"); }
std::string EtcdLayout::Replica(std::string_view replica_id) const {
  return StrCat(prefix_, "replicas/", replica_id);
}
std::string EtcdLayout::UsageWriter(std::string_view writer) const {
  return StrCat(prefix_, "usage-writers/", writer);
}

}  // namespace latchkey
